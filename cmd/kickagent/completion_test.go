package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The shell completions are static files (contrib/completion): these tests
// keep their commands and flags those of the --help texts.

var (
	helpFlag = regexp.MustCompile(`(?:^|[\s\[|(])(--?[a-z0-9][-a-z0-9]*)`)
	bashCase = regexp.MustCompile(`(?m)^\t([a-z| -]+)\) flags="([^"]*)"`)
	zshCase  = regexp.MustCompile(`(?m)^\t([a-z|-]+)\) flags=\(([^)]*)\)`)
)

// completionCommands are the commands of "kickagent --help".
func completionCommands(t *testing.T) []string {
	t.Helper()
	var cmds []string
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  kickagent ([a-z-]+)`).FindAllStringSubmatch(usage, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			cmds = append(cmds, m[1])
		}
	}
	for _, m := range regexp.MustCompile(`also: ([a-z, ]+)\)`).FindAllStringSubmatch(usage, -1) {
		for _, c := range strings.Split(m[1], ", ") {
			if !seen[c] {
				seen[c] = true
				cmds = append(cmds, c)
			}
		}
	}
	if len(cmds) < 10 {
		t.Fatalf("only %d commands in the usage: %v", len(cmds), cmds)
	}
	return cmds
}

// helpFlags are the flags a command's --help text names.
func helpFlags(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	var out bytes.Buffer
	run(context.Background(), []string{cmd, "--help"}, &out, &out)
	flags := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(out.String(), -1) {
		flags[m[1]] = true
	}
	return flags
}

// synopsisFlags are the flags of cmd's own synopsis lines (a help text
// can describe several commands, and prose names flags of others).
func synopsisFlags(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	var out bytes.Buffer
	run(context.Background(), []string{cmd, "--help"}, &out, &out)
	flags := map[string]bool{}
	in := false
	for _, line := range strings.Split(out.String(), "\n") {
		if line == "" {
			break
		}
		switch {
		case strings.Contains(line, "kickagent "+cmd+" ") || strings.HasSuffix(line, "kickagent "+cmd):
			in = true
		case strings.HasPrefix(line, "      "):
			// a continuation of the line before
		default:
			in = false
		}
		if in {
			for _, m := range helpFlag.FindAllStringSubmatch(line, -1) {
				flags[m[1]] = true
			}
		}
	}
	// The flag list ("  -x ..." lines) when the text is this command's alone.
	if !regexp.MustCompile(`(?m)^\s+kickagent (?:[a-z-]+)`).MatchString(strings.ReplaceAll(out.String(), "kickagent "+cmd, "")) {
		for _, m := range regexp.MustCompile(`(?m)^  (--?[a-z0-9][-a-z0-9]*)`).FindAllStringSubmatch(out.String(), -1) {
			flags[m[1]] = true
		}
	}
	if len(flags) == 0 && cmd != "snapshot" {
		t.Errorf("%s --help: no flags in its synopsis", cmd)
	}
	return flags
}

func completionFlags(t *testing.T, path string, re *regexp.Regexp) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		for _, c := range strings.Split(m[1], "|") {
			got[strings.TrimSpace(c)] = strings.Fields(m[2])
		}
	}
	// test-policy's bash case sets flags on its own line.
	if tp := regexp.MustCompile(`(?m)^\t\tflags="([^"]*)"`).FindStringSubmatch(string(b)); tp != nil {
		got["test-policy"] = strings.Fields(tp[1])
	}
	return got
}

func TestCompletionFlagsMatchHelp(t *testing.T) {
	for _, file := range []struct {
		path string
		re   *regexp.Regexp
	}{{"../../contrib/completion/kickagent.bash", bashCase}, {"../../contrib/completion/_kickagent", zshCase}} {
		comp := completionFlags(t, file.path, file.re)
		for _, cmd := range completionCommands(t) {
			if cmd == "version" {
				continue
			}
			flags, ok := comp[cmd]
			if !ok {
				t.Errorf("%s: no flags for command %q", file.path, cmd)
				continue
			}
			help := helpFlags(t, cmd)
			var missing []string
			for _, f := range flags {
				if !help[f] {
					t.Errorf("%s: %s %s is not in its --help", file.path, cmd, f)
				}
			}
			listed := map[string]bool{"--help": true}
			for _, f := range flags {
				listed[f] = true
			}
			for f := range synopsisFlags(t, cmd) {
				if !listed[f] {
					missing = append(missing, f)
				}
			}
			sort.Strings(missing)
			if len(missing) > 0 {
				t.Errorf("%s: %s: --help names %v, the completion does not", file.path, cmd, missing)
			}
		}
		if !strings.Contains(mustRead(t, file.path), strings.Join(completionCommands(t)[:3], " ")) && file.re == bashCase {
			t.Errorf("%s: the command list is not the usage's", file.path)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBashCompletionSmoke sources the bash completion and asks it what a
// user typing would see.
func TestBashCompletionSmoke(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	for _, tc := range []struct{ line, want string }{
		{"kickagent dr", "drain"},
		{"kickagent t", "test-policy"},
		{"kickagent run --rules-d", "--rules-dir"},
		{"kickagent run --log-level w", "warn"},
		{"kickagent block --f", "--for --force"},
		{"kickagent help ki", "kick"},
	} {
		script := `source ../../contrib/completion/kickagent.bash
COMP_WORDS=(` + tc.line + `); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _kickagent; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v: %s", tc.line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("%q completes to %q, want %q", tc.line, got, tc.want)
		}
	}
}
