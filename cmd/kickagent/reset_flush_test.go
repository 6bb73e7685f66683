package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/authmaster/authmastertest"
)

// cutoffOf is the installed reset's logged_in_before.
func cutoffOf(t *testing.T, dir string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, only(t, dir).Rule.LoggedInBefore)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// reset flushes USER and its lowercase form first, and only then writes
// the rule, with the cutoff at or after the flush's answer: a session that
// logged in before the flush completed may have used the cached password.
func TestResetFlushesFirst(t *testing.T) {
	dir, rd := jobDir(t)
	var mu sync.Mutex
	var answered time.Time
	var filesAtFlush []string
	srv := authmastertest.Start(t, &authmastertest.Server{Reply: func(string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		filesAtFlush = files(t, dir)
		time.Sleep(50 * time.Millisecond)
		answered = time.Now()
		return "OK\t1\t3\n", true
	}})
	code, out, errs := runCmd(t, append([]string{"reset", "Alice", "--auth-master", srv.Path}, rd...)...)
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if got := srv.Received(); !slices.Equal(got, []string{"VERSION\t1\t0", "CACHE-FLUSH\t1\tAlice\talice"}) {
		t.Errorf("the auth process got %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(filesAtFlush) != 0 {
		t.Errorf("files before the flush answered: %v", filesAtFlush)
	}
	e := only(t, dir)
	// Every kick's audit record carries the rule's description.
	if e.Rule.AuthCacheFlush != "flushed" {
		t.Errorf("auth_cache_flush %q, want flushed (kickagent_resets counts it)", e.Rule.AuthCacheFlush)
	}
	if !strings.HasSuffix(e.Rule.Description, "; auth cache: 3 entries flushed for Alice, alice") {
		t.Errorf("description %q does not record the flush", e.Rule.Description)
	}
	if cut := cutoffOf(t, dir); cut.Before(answered) {
		t.Errorf("cutoff %v before the flush answered at %v", cut, answered)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "reset: "+e.Path) ||
		lines[1] != `auth cache: 3 entries flushed for "Alice", "alice" (`+srv.Path+`); sessions logged in before `+e.Rule.LoggedInBefore+` are old` {
		t.Errorf("output:\n%s", out)
	}
}

// --at after the flush is kept; --at before it moves to the flush's end.
func TestResetFlushAt(t *testing.T) {
	srv := authmastertest.Start(t, &authmastertest.Server{Cache: []string{"P1\talice"}})
	dir, rd := jobDir(t)
	future := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if code, out, errs := runCmd(t, append([]string{"reset", "alice", "--auth-master", srv.Path, "--at", future.Format(time.RFC3339)}, rd...)...); code != exitOK ||
		!strings.Contains(out, "1 entries flushed") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if cut := cutoffOf(t, dir); !cut.Equal(future) {
		t.Errorf("cutoff %v, want --at %v", cut, future)
	}
	os.RemoveAll(dir)
	before := time.Now()
	if code, out, errs := runCmd(t, append([]string{"reset", "alice", "--auth-master", srv.Path, "--at", "2026-01-01T00:00:00Z"}, rd...)...); code != exitOK ||
		!strings.Contains(out, "0 entries flushed") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if cut := cutoffOf(t, dir); cut.Before(before) {
		t.Errorf("cutoff %v: --at in the past must move to the flush's completion (after %v)", cut, before)
	}
}

// A flush that fails still installs the reset (a reset that does not kick
// is worse), says loudly that the old password may still log in, and
// exits 2: a missing socket, an auth process that does not answer.
func TestResetFlushFails(t *testing.T) {
	silent := authmastertest.Start(t, &authmastertest.Server{Silent: true})
	for _, tc := range []struct {
		name  string
		flags []string
		cause string
	}{
		{"missing", []string{"--auth-master", filepath.Join(t.TempDir(), "auth-master")}, "does not exist"},
		{"silent", []string{"--auth-master", silent.Path, "--timeout", "200ms"}, "no answer within"},
	} {
		dir, rd := jobDir(t)
		before := time.Now()
		code, out, errs := runCmd(t, append(append([]string{"reset", "alice"}, tc.flags...), rd...)...)
		if code != exitPartial {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, code, exitPartial, out, errs)
		}
		if !strings.Contains(errs, "WARNING: the auth cache was NOT flushed") || !strings.Contains(errs, tc.cause) ||
			!strings.Contains(errs, "the old password may still log in") || !strings.Contains(errs, "the reset is installed") {
			t.Errorf("%s: stderr:\n%s", tc.name, errs)
		}
		if strings.Contains(out, "auth cache") || !strings.HasPrefix(out, "reset: ") {
			t.Errorf("%s: stdout:\n%s", tc.name, out)
		}
		if cut := cutoffOf(t, dir); cut.Before(before) {
			t.Errorf("%s: cutoff %v before the reset", tc.name, cut)
		}
		if f := only(t, dir).Rule.AuthCacheFlush; f != "failed" {
			t.Errorf("%s: auth_cache_flush %q, want failed", tc.name, f)
		}
		if d := only(t, dir).Rule.Description; !strings.Contains(d, "; auth cache NOT flushed: ") || !strings.Contains(d, tc.cause) {
			t.Errorf("%s: description %q does not record the failed flush", tc.name, d)
		}
	}
}

// -f: the cache is keyed by login names, so nothing is flushed, the reset
// is installed, and the exit status says the cache was not flushed unless
// --no-cache-flush says that is known. --no-cache-flush sends nothing.
func TestResetNoFlush(t *testing.T) {
	srv := authmastertest.Start(t, &authmastertest.Server{Cache: []string{"P1\talice"}})
	for _, tc := range []struct {
		args []string
		code int
		warn bool
	}{
		{[]string{"reset", "-f", "user_alt", "alice-alt", "--auth-master", srv.Path}, exitPartial, true},
		{[]string{"reset", "-f", "user_alt", "alice-alt", "--no-cache-flush"}, exitOK, false},
		{[]string{"reset", "alice", "--no-cache-flush"}, exitOK, false},
	} {
		dir, rd := jobDir(t)
		code, out, errs := runCmd(t, append(tc.args, rd...)...)
		if code != tc.code || strings.Contains(errs, "WARNING") != tc.warn || strings.Contains(out, "auth cache") {
			t.Errorf("%q: exit %d (want %d)\n%s%s", tc.args, code, tc.code, out, errs)
		}
		if tc.warn && !strings.Contains(errs, "keyed by login names, not by user_alt values") {
			t.Errorf("%q: the warning does not say why:\n%s", tc.args, errs)
		}
		only(t, dir)
	}
	if got := srv.Received(); len(got) != 0 || len(srv.CacheNow()) != 1 {
		t.Errorf("the auth process got %q", got)
	}
}

// --dry-run flushes and writes nothing and says what it would do.
func TestResetDryRun(t *testing.T) {
	srv := authmastertest.Start(t, &authmastertest.Server{Cache: []string{"P1\talice"}})
	dir, rd := jobDir(t)
	for args, want := range map[string]string{
		"Alice":                           `would flush the auth cache entries of "Alice", "alice" through ` + srv.Path,
		"-f user_alt alice-alt":           "would NOT flush the auth cache",
		"alice --no-cache-flush":          "without an auth cache flush",
		"alice --at 2026-01-01T00:00:00Z": "the later of 2026-01-01T00:00:00Z and the flush's completion",
	} {
		a := append(append(append([]string{"reset"}, strings.Fields(args)...), "--dry-run", "--auth-master", srv.Path), rd...)
		if strings.Contains(args, "--no-cache-flush") {
			a = append(append([]string{"reset"}, strings.Fields(args)...), append([]string{"--dry-run"}, rd...)...)
		}
		code, out, errs := runCmd(t, a...)
		if code != exitOK || !strings.Contains(out, want) || !strings.Contains(out, "nothing changed") {
			t.Errorf("%s: exit %d\n%s%s", args, code, out, errs)
		}
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("dry run wrote %v", f)
	}
	if got := srv.Received(); len(got) != 0 {
		t.Errorf("dry run sent %q", got)
	}
}

// The default socket is auth-master beside the config's anvil_socket; a
// config that cannot be read stops the reset before any flush.
func TestResetDefaultSocketAndConfigFirst(t *testing.T) {
	srv := authmastertest.Start(t, &authmastertest.Server{Cache: []string{"P1\tbob"}})
	dir := filepath.Join(t.TempDir(), "rules.d")
	conf := filepath.Join(t.TempDir(), "kickagent.yaml")
	anvil := filepath.Join(filepath.Dir(srv.Path), "anvil")
	if err := os.WriteFile(conf, []byte("anvil_socket: "+anvil+"\nrules_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "reset", "bob", "-c", conf)
	if code != exitOK || !strings.Contains(out, "1 entries flushed") || !strings.Contains(out, srv.Path) {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	only(t, dir)

	missing := filepath.Join(t.TempDir(), "none.yaml")
	if code, _, errs := runCmd(t, "reset", "carol", "-c", missing, "--auth-master", srv.Path); code != exitConfig || !strings.Contains(errs, missing) {
		t.Errorf("missing config: exit %d %s", code, errs)
	}
	if got := srv.Received(); len(got) != 2 {
		t.Errorf("the auth process got %q (one reset's handshake and flush)", got)
	}
}

func TestResetFlushUsage(t *testing.T) {
	_, rd := jobDir(t)
	for _, args := range [][]string{
		{"reset", "alice", "--no-cache-flush", "--auth-master", "/run/dovecot/auth-master"},
		{"reset", "alice", "--timeout", "0s"},
		{"reset", "alice", "--timeout", "soon"},
	} {
		if code, _, errs := runCmd(t, append(args, rd...)...); code != exitUsage {
			t.Errorf("%q: exit %d %s", args, code, errs)
		}
	}
}

// A reset refused for its rules (exit 78, nothing written) has already
// flushed: the config is read first, but the rule set is checked with the
// new file, after the flush. Flushing only makes Dovecot ask the passdb
// again, so the output says it happened and the error says why nothing
// was installed.
func TestResetFlushThenRefused(t *testing.T) {
	srv := authmastertest.Start(t, &authmastertest.Server{Cache: []string{"P1\talice"}})
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "rules.d")
	bad := filepath.Join(tmp, "rules.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - name: x\n    userz: [eve]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(tmp, "kickagent.yaml")
	if err := os.WriteFile(conf, []byte("rules: ["+bad+"]\nrules_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "reset", "alice", "-c", conf, "--auth-master", srv.Path)
	if code != exitConfig || !strings.Contains(errs, bad) || strings.Contains(errs, "WARNING") {
		t.Errorf("exit %d, want %d naming %s\n%s%s", code, exitConfig, bad, out, errs)
	}
	if want := `auth cache: 1 entries flushed for "alice" (` + srv.Path + ")\n"; out != want {
		t.Errorf("stdout %q, want %q (no cutoff: nothing was installed)", out, want)
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("installed %v", f)
	}
}
