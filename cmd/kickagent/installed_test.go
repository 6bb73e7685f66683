package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The files the package and make install put in place (packaging/nfpm.yaml):
// issue 13 item 4. test/package.sh proves them installed in a chroot; these
// tests catch a drift on every go test.

type nfpmContents struct {
	Contents []struct {
		Src, Dst, Type string
	}
}

func packagedPaths(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../packaging/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c nfpmContents
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	dst := map[string]string{} // dst -> src
	for _, e := range c.Contents {
		dst[e.Dst] = e.Src
	}
	return dst
}

// TestInstalledDefaultsKickNothing: the installed config and rules decide
// no kick on a snapshot the example rules kick on, and the config is dry.
func TestInstalledDefaultsKickNothing(t *testing.T) {
	pkg := packagedPaths(t)
	if pkg["/etc/kickagent/kickagent.yaml"] != "systemd/kickagent.yaml" || pkg["/etc/kickagent/rules.yaml"] != "systemd/rules.yaml" {
		t.Fatalf("the package does not install systemd/kickagent.yaml and systemd/rules.yaml: %v", pkg)
	}
	cfg, err := os.ReadFile("../../systemd/kickagent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^dry_run: true$`).Match(cfg) {
		t.Error("systemd/kickagent.yaml: dry_run is not true")
	}
	// The installed config, its rules path pointed at the repository's file.
	dir := t.TempDir()
	rules, _ := filepath.Abs("../../systemd/rules.yaml")
	local := strings.NewReplacer("/etc/kickagent/rules.yaml", rules,
		"/etc/kickagent/rules.d", filepath.Join(dir, "rules.d"),
		"/var/lib/kickagent", filepath.Join(dir, "state")).Replace(string(cfg))
	if err := os.WriteFile(filepath.Join(dir, "kickagent.yaml"), []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	snap := "testdata/plan/example24.snap.json"
	for _, tc := range []struct {
		args []string
		want *regexp.Regexp
	}{
		{[]string{"--rules", "../../rules.example.yaml"}, regexp.MustCompile(`(?m)^[1-9][0-9]* of [0-9]+ sessions would be kicked`)},
		{[]string{"-c", filepath.Join(dir, "kickagent.yaml")}, regexp.MustCompile(`(?m)^0 of [1-9][0-9]* sessions would be kicked, 0 decisions`)},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"plan", "--snapshot", snap, "--now", planNow}, tc.args...)
		if code := run(context.Background(), args, &out, &errb); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		if !tc.want.MatchString(out.String()) {
			t.Errorf("%v: want %s, got:\n%s", args, tc.want, out.String())
		}
	}
}

// TestUnitNamesInstalledFiles: the unit runs the packaged binary, its
// Documentation= is installed, and it names no file the tree lacks.
func TestUnitNamesInstalledFiles(t *testing.T) {
	pkg := packagedPaths(t)
	b, err := os.ReadFile("../../systemd/kickagent.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, m := range regexp.MustCompile(`(?m)^Exec(?:Start|StartPre)=(\S+)`).FindAllStringSubmatch(unit, -1) {
		if pkg[m[1]] != "packaging/build/kickagent" {
			t.Errorf("unit runs %s, the package installs the binary elsewhere", m[1])
		}
	}
	docs := regexp.MustCompile(`(?m)^Documentation=(.*)$`).FindStringSubmatch(unit)
	if docs == nil {
		t.Fatal("unit has no Documentation=")
	}
	for _, d := range strings.Fields(docs[1]) {
		var want string
		switch {
		case strings.HasPrefix(d, "file://"):
			want = strings.TrimPrefix(d, "file://")
		case strings.HasPrefix(d, "man:"):
			m := regexp.MustCompile(`^man:([a-z-]+)\(([0-9])\)$`).FindStringSubmatch(d)
			if m == nil {
				t.Errorf("Documentation %q: not man:NAME(N)", d)
				continue
			}
			want = "/usr/share/man/man" + m[2] + "/" + m[1] + "." + m[2] + ".gz"
		default:
			continue
		}
		if _, ok := pkg[want]; !ok {
			t.Errorf("Documentation %s: the package does not install %s", d, want)
		}
	}
	for _, name := range regexp.MustCompile(`[A-Za-z0-9._-]+\.example\b`).FindAllString(unit, -1) {
		if _, err := os.Stat(filepath.Join("../..", name)); err != nil {
			t.Errorf("the unit names %s, which does not exist", name)
		}
	}
}
