package testrig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The instances with an SQLite passdb and the auth cache on (test/dovecot/README.md).
const (
	P23 = "p23" // 2.3 backend, SQLite passdb, static userdb
	P24 = "p24" // 2.4 backend (chroot), SQLite passdb and userdb giving user_alt
)

// Policy is the auth policy configuration p23/p24 get at start (instance.sh's KA_POLICY_*
// variables). The zero value starts them without an auth policy.
type Policy struct {
	URL          string        // KA_POLICY_URL, e.g. http://127.0.0.1:33190/; "" means no policy
	Header       string        // KA_POLICY_HEADER: auth_policy_server_api_header
	Timeout      time.Duration // KA_POLICY_TIMEOUT_MS; 0 means instance.sh's 2 s
	RejectOnFail bool          // KA_POLICY_REJECT_ON_FAIL
	Socket       string        // KA_POLICY_SOCKET (2.4 only): host path of a UNIX socket in the chroot
}

// environ sets every KA_POLICY_* variable, empty ones too, so that the test process's own
// environment never configures a policy the test did not ask for.
func (p Policy) environ() []string {
	ms := ""
	if p.Timeout > 0 {
		ms = strconv.FormatInt(p.Timeout.Milliseconds(), 10)
	}
	rof := "no"
	if p.RejectOnFail {
		rof = "yes"
	}
	return []string{"KA_POLICY_URL=" + p.URL, "KA_POLICY_HEADER=" + p.Header, "KA_POLICY_TIMEOUT_MS=" + ms,
		"KA_POLICY_REJECT_ON_FAIL=" + rof, "KA_POLICY_SOCKET=" + p.Socket}
}

// StartSQL (re)starts p23 or p24 from scratch with policy p: a fresh users.db (every user's
// password "pass") and an empty auth cache.
func StartSQL(ctx context.Context, name string, p Policy) (*Instance, error) {
	if _, err := runScriptEnv(ctx, p.environ(), "start", name); err != nil {
		return nil, err
	}
	in, err := Load(name)
	if err != nil {
		return nil, err
	}
	if in.DB() == "" {
		return nil, fmt.Errorf("testrig: %s has no SQL passdb (KA_DB is empty)", name)
	}
	return in, nil
}

// StartSQLT is StartSQL failing t on error.
func StartSQLT(t testing.TB, name string, p Policy) *Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, err := StartSQL(ctx, name, p)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func runScriptEnv(ctx context.Context, env []string, args ...string) (string, error) {
	script, err := Script()
	if err != nil {
		return "", err
	}
	root, err := Root()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Env = append(append(os.Environ(), "KA_ROOT="+root), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("testrig: instance.sh %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// DB returns the host path of the instance's SQLite db (KA_DB), "" if it has none.
func (in *Instance) DB() string { return in.Env["KA_DB"] }

// AuthMaster returns the host path of the auth-master socket (KA_AUTH_MASTER), which
// `doveadm auth cache flush` uses.
func (in *Instance) AuthMaster() string { return in.Env["KA_AUTH_MASTER"] }

// Passwd sets user's password in the instance's db (instance.sh passwd). It does not touch
// Dovecot's auth cache: a login that is cached keeps working with the old password.
func (in *Instance) Passwd(ctx context.Context, user, pass string) error {
	_, err := runScriptEnv(ctx, nil, "passwd", in.Name, user, pass)
	return err
}

// PasswdT is Passwd failing t on error.
func (in *Instance) PasswdT(t testing.TB, user, pass string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := in.Passwd(ctx, user, pass); err != nil {
		t.Fatal(err)
	}
}

// FlushAuthCache runs `doveadm auth cache flush [users...]` (no users: the whole cache) and
// returns the number of entries Dovecot says it flushed. Entries are keyed by the user name
// after auth_username_format (lower case by default), so "Alice" flushes nothing.
func (in *Instance) FlushAuthCache(ctx context.Context, users ...string) (int, error) {
	out, errOut, code, err := in.DoveadmFull(ctx, append([]string{"auth", "cache", "flush"}, users...)...)
	if err != nil {
		return 0, err
	}
	if code != 0 {
		return 0, fmt.Errorf("testrig: doveadm auth cache flush exited %d: %s", code, strings.TrimSpace(errOut))
	}
	return parseFlushed(out)
}

// parseFlushed reads doveadm's "N cache entries flushed" line.
func parseFlushed(out string) (int, error) {
	n, rest, ok := strings.Cut(strings.TrimSpace(out), " ")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || rest != "cache entries flushed" {
		return 0, fmt.Errorf("testrig: unexpected doveadm auth cache flush output %q", out)
	}
	return count, nil
}

// LoginResult is the server's answer to one login attempt.
type LoginResult struct {
	OK   bool   // IMAP "a OK", POP3 "+OK"
	Line string // the answer to LOGIN (IMAP) or PASS (POP3), e.g. "a NO [ALERT] X"
}

// TryLogin connects from src, logs user in once and closes the connection. A refused login
// is a result (OK false, with the server's line), not an error: err is only for connection
// or protocol trouble. Dovecot delays the answer to a failed login (about 2 s), and the next
// logins from the same src wait longer each time (anvil's auth penalty): give each attempt
// that may fail its own src.
func (in *Instance) TryLogin(ctx context.Context, p Protocol, src netip.Addr, user, pass string) (LoginResult, error) {
	port := in.IMAPPort
	if p == POP3 {
		port = in.POP3Port
	}
	c, err := dial(ctx, p, src, port, user)
	if err != nil {
		return LoginResult{}, err
	}
	defer c.Close()
	greeting, err := c.readLine(ctx)
	if err != nil {
		return LoginResult{}, c.fail("greeting", greeting, err)
	}
	if p == IMAP {
		if !strings.HasPrefix(greeting, "* OK") {
			return LoginResult{}, c.fail("greeting", greeting, nil)
		}
		u, err := IMAPQuote(user)
		if err != nil {
			return LoginResult{}, err
		}
		pw, err := IMAPQuote(pass)
		if err != nil {
			return LoginResult{}, err
		}
		l, err := c.command(ctx, "a", "LOGIN "+u+" "+pw)
		if err != nil {
			return LoginResult{}, c.fail("LOGIN", l, err)
		}
		return LoginResult{OK: strings.HasPrefix(l, "a OK"), Line: l}, nil
	}
	if !strings.HasPrefix(greeting, "+OK") {
		return LoginResult{}, c.fail("greeting", greeting, nil)
	}
	if strings.ContainsAny(user+pass, "\r\n\x00") {
		return LoginResult{}, errors.New("testrig: POP3 user/pass with CR, LF or NUL")
	}
	if err := c.write(ctx, "USER "+user); err != nil {
		return LoginResult{}, c.fail("USER", "", err)
	}
	if l, err := c.readLine(ctx); err != nil || !strings.HasPrefix(l, "+OK") {
		return LoginResult{}, c.fail("USER", l, err)
	}
	if err := c.write(ctx, "PASS "+pass); err != nil {
		return LoginResult{}, c.fail("PASS", "", err)
	}
	l, err := c.readLine(ctx)
	if err != nil {
		return LoginResult{}, c.fail("PASS", l, err)
	}
	return LoginResult{OK: strings.HasPrefix(l, "+OK"), Line: l}, nil
}
