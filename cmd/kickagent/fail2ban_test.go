package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/jobs"
)

// fail2banAction reads the [Definition] and [Init] options of a fail2ban
// action file (continuation lines start with white space).
func fail2banAction(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts := map[string]string{}
	last := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(strings.TrimSpace(l), "#"), strings.HasPrefix(l, "["):
			last = ""
		case l != "" && (l[0] == ' ' || l[0] == '\t') && last != "":
			opts[last] += "\n" + strings.TrimSpace(l)
		case strings.Contains(l, "="):
			k, v, _ := strings.Cut(l, "=")
			last = strings.TrimSpace(k)
			opts[last] = strings.TrimSpace(v)
		}
	}
	return opts
}

// substitute replaces fail2ban's <tag>s, repeatedly (an option may name
// another), as fail2ban does.
func substitute(t *testing.T, s string, tags map[string]string) string {
	t.Helper()
	re := regexp.MustCompile(`<([a-z_]+)>`)
	for i := 0; i < 10 && re.MatchString(s); i++ {
		s = re.ReplaceAllStringFunc(s, func(m string) string {
			v, ok := tags[m[1:len(m)-1]]
			if !ok {
				t.Fatalf("unknown tag %s", m)
			}
			return v
		})
	}
	return s
}

// shellWords splits a command line as sh does for plain words and
// double-quoted strings (all the action uses).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	in, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		case strings.ContainsRune("$`\\'|;&<>(){}", r):
			t.Fatalf("%q: shell syntax %q the test does not interpret", s, r)
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if quoted {
		t.Fatalf("%q: unbalanced quote", s)
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// TestFail2banAction runs the shipped action's ban and unban commands,
// with fail2ban's tags substituted, through kickagent.
func TestFail2banAction(t *testing.T) {
	opts := fail2banAction(t, filepath.Join("..", "..", "contrib", "fail2ban", "action.d", "kickagent.conf"))
	for _, k := range []string{"actionban", "actionunban", "kickagent", "kickagent_config"} {
		if _, ok := opts[k]; !ok {
			t.Fatalf("the action has no %s", k)
		}
	}
	d := t.TempDir()
	dir := filepath.Join(d, "rules.d")
	cfg := filepath.Join(d, "kickagent.yaml")
	if err := os.WriteFile(cfg, []byte("rules_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"192.0.2.7", "2001:db8::7"} {
		tags := map[string]string{"ip": ip, "bantime": "600", "name": "dovecot",
			"kickagent": opts["kickagent"], "kickagent_config": cfg}
		cmd := func(action string) []string {
			words := shellWords(t, substitute(t, opts[action], tags))
			if len(words) < 2 || filepath.Base(words[0]) != "kickagent" {
				t.Fatalf("%s: %q does not run kickagent", action, words)
			}
			return words[1:]
		}
		start := time.Now()
		code, out, errs := runCmd(t, cmd("actionban")...)
		if code != exitOK {
			t.Fatalf("%s ban: exit %d\n%s%s", ip, code, out, errs)
		}
		e := only(t, dir)
		exp, _ := time.Parse(time.RFC3339, e.Rule.Expires)
		if e.Kind != jobs.Block || len(e.Rule.Networks) != 1 || !strings.HasPrefix(e.Rule.Networks[0], ip+"/") ||
			e.Rule.Description != "fail2ban dovecot" ||
			exp.Before(start.Add(600*time.Second)) || exp.After(time.Now().Add(601*time.Second)) {
			t.Errorf("%s: ban wrote %+v", ip, e.Rule)
		}
		if code, out, errs := runCmd(t, cmd("actionunban")...); code != exitOK {
			t.Fatalf("%s unban: exit %d\n%s%s", ip, code, out, errs)
		}
		if f := files(t, dir); len(f) != 0 {
			t.Errorf("%s: unban left %v", ip, f)
		}
	}
	for _, k := range []string{"actionstart", "actionstop", "actioncheck"} {
		if opts[k] != "" {
			t.Errorf("%s = %q: kickagent needs no start/stop/check", k, opts[k])
		}
	}
}
