// Package testrig runs throwaway Dovecot 2.3 and 2.4 instances for kickagent's integration
// tests and benchmarks, logs real IMAP/POP3 sessions in, and registers synthetic anvil sessions.
//
// The instances are managed by test/dovecot/instance.sh (installed by test/dovecot/install.sh);
// each one writes a sourceable env file, $KA_ROOT/inst/NAME/env, which Load reads.
// Integration tests run only when KICKAGENT_IT=1 (see RequireIntegration).
package testrig

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Instance names known to instance.sh.
const (
	V23        = "v23"        // 2.3 backend, one imap process per session
	V23Shared  = "v23shared"  // 2.3 backend, up to 10 sessions in one imap process
	V23Proxy   = "v23proxy"   // 2.3 login proxy to v23 (proxied sessions only in ipc)
	V24        = "v24"        // 2.4 backend (chroot), userdb alt fields user_alt/user_ext
	V24Proxy   = "v24proxy"   // 2.4 login proxy to v24, one login process per connection
	V24ProxyHP = "v24proxyhp" // 2.4 login proxy to v24, high-performance login processes
	// H23 and H24 hibernate IMAP clients after 1 s in IDLE: their sessions move to one
	// imap-hibernate process (anvil's service: "imap" on 2.3, "imap-hibernate" on 2.4).
	H23 = "h23" // 2.3 backend with IMAP hibernation
	H24 = "h24" // 2.4 backend (chroot) with IMAP hibernation
)

// Users are the accounts every instance knows; all have Password.
var Users = []string{"alice", "bob", "carol", "jane", "jano", "james", "dave", "eve", "john doe"}

// Password is the password of every user in Users.
const Password = "pass"

// Instance describes one running (or last started) Dovecot instance, as read from its env file.
type Instance struct {
	Name     string // KA_NAME
	Version  string // KA_VERSION: "2.3" or "2.4"
	Dir      string // KA_DIR: host path of the instance's files
	Chroot   string // KA_CHROOT: host path of the chroot ("" for 2.3)
	BaseDir  string // KA_BASE_DIR: host path of base_dir
	Anvil    string // KA_ANVIL: host path of the anvil socket
	IPC      string // KA_IPC: host path of the ipc socket
	IMAPPort int    // KA_IMAP_PORT
	POP3Port int    // KA_POP3_PORT
	Conf     string // KA_CONF: config path as dovecot sees it
	Log      string // KA_LOG: host path of the log file
	Backend  string // KA_BACKEND: backend instance name for proxies, else ""
	// DoveadmCmd is KA_DOVEADM split on spaces: the command prefix running doveadm for this
	// instance, e.g. [doveadm -c /x/dovecot.conf] or [chroot /x/trixie doveadm -c /ka/v24/dovecot.conf].
	DoveadmCmd []string
	Env        map[string]string // every key of the env file
}

// Is24 reports whether the instance runs Dovecot 2.4.
func (in *Instance) Is24() bool { return strings.HasPrefix(in.Version, "2.4") }

// RepoRoot returns the directory holding go.mod, searched upwards from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testrig: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Root returns KA_ROOT: the environment variable if set, else <repo>/.dovecot.
func Root() (string, error) {
	if r := os.Getenv("KA_ROOT"); r != "" {
		return r, nil
	}
	repo, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(repo, ".dovecot"), nil
}

// Load reads the env file of instance name. It does not check that the instance is running.
func Load(name string) (*Instance, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, "inst", name, "env")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("testrig: instance %s: %w (start it with test/dovecot/instance.sh start %s)", name, err, name)
	}
	defer f.Close()
	env, err := ParseEnv(f)
	if err != nil {
		return nil, fmt.Errorf("testrig: %s: %w", path, err)
	}
	return instanceFromEnv(env)
}

func instanceFromEnv(env map[string]string) (*Instance, error) {
	in := &Instance{
		Name: env["KA_NAME"], Version: env["KA_VERSION"], Dir: env["KA_DIR"], Chroot: env["KA_CHROOT"],
		BaseDir: env["KA_BASE_DIR"], Anvil: env["KA_ANVIL"], IPC: env["KA_IPC"], Conf: env["KA_CONF"],
		Log: env["KA_LOG"], Backend: env["KA_BACKEND"], DoveadmCmd: strings.Fields(env["KA_DOVEADM"]), Env: env,
	}
	var err error
	if in.IMAPPort, err = strconv.Atoi(env["KA_IMAP_PORT"]); err != nil {
		return nil, fmt.Errorf("testrig: KA_IMAP_PORT: %w", err)
	}
	if in.POP3Port, err = strconv.Atoi(env["KA_POP3_PORT"]); err != nil {
		return nil, fmt.Errorf("testrig: KA_POP3_PORT: %w", err)
	}
	if in.Name == "" || in.Anvil == "" || len(in.DoveadmCmd) == 0 || (in.Version != "2.3" && in.Version != "2.4") {
		return nil, fmt.Errorf("testrig: incomplete env file (KA_NAME=%q KA_VERSION=%q)", in.Name, in.Version)
	}
	return in, nil
}

// ParseEnv parses KEY=VALUE lines as instance.sh writes them. Values may be bare,
// 'single-quoted' (taken literally) or "double-quoted" (backslash escapes \" \\ \$ \`).
// Blank lines and lines starting with # are skipped; an optional "export " prefix is allowed.
func ParseEnv(r io.Reader) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t'\"") {
			return nil, fmt.Errorf("line %d: not KEY=VALUE: %q", n, line)
		}
		val, err := unquoteShell(v)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		env[k] = val
	}
	return env, sc.Err()
}

func unquoteShell(v string) (string, error) {
	switch {
	case v == "":
		return "", nil
	case v[0] == '\'':
		if len(v) < 2 || v[len(v)-1] != '\'' || strings.Contains(v[1:len(v)-1], "'") {
			return "", fmt.Errorf("bad single-quoted value %s", v)
		}
		return v[1 : len(v)-1], nil
	case v[0] == '"':
		if len(v) < 2 || v[len(v)-1] != '"' {
			return "", fmt.Errorf("bad double-quoted value %s", v)
		}
		var b strings.Builder
		s := v[1 : len(v)-1]
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
				i++
				c = s[i]
			} else if c == '"' {
				return "", fmt.Errorf("unescaped quote in %s", v)
			}
			b.WriteByte(c)
		}
		return b.String(), nil
	case strings.ContainsAny(v, " \t'\"\\$`"):
		return "", fmt.Errorf("unquoted value with special characters: %s", v)
	}
	return v, nil
}

// Script returns the path of test/dovecot/instance.sh.
func Script() (string, error) {
	repo, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(repo, "test", "dovecot", "instance.sh"), nil
}

func runScript(ctx context.Context, args ...string) error {
	script, err := Script()
	if err != nil {
		return err
	}
	root, err := Root()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Env = append(os.Environ(), "KA_ROOT="+root)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("testrig: instance.sh %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return nil
}

// Start (re)starts instance name from scratch (a running one is stopped first, which also
// drops its synthetic sessions; a proxy's backend is started if it is not running) and
// returns it once anvil, IMAP and POP3 accept connections.
func Start(ctx context.Context, name string) (*Instance, error) {
	if err := runScript(ctx, "start", name); err != nil {
		return nil, err
	}
	return Load(name)
}

// Stop stops instance name (no error if it is not running).
func Stop(ctx context.Context, name string) error { return runScript(ctx, "stop", name) }

// StopAll stops every instance and unmounts the chroot's /proc and /dev.
func StopAll(ctx context.Context) error { return runScript(ctx, "stop-all") }

// Doveadm runs doveadm for this instance with args. err is non-nil only when doveadm could not
// be run to completion (not found, killed, ctx done); a non-zero exit status is returned in
// exitCode with err == nil. Use DoveadmFull to see stderr.
func (in *Instance) Doveadm(ctx context.Context, args ...string) (stdout string, exitCode int, err error) {
	stdout, _, exitCode, err = in.DoveadmFull(ctx, args...)
	return stdout, exitCode, err
}

// DoveadmFull is Doveadm that also returns stderr.
func (in *Instance) DoveadmFull(ctx context.Context, args ...string) (stdout, stderr string, exitCode int, err error) {
	argv := append(append([]string(nil), in.DoveadmCmd[1:]...), args...)
	cmd := exec.CommandContext(ctx, in.DoveadmCmd[0], argv...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 && ctx.Err() == nil {
		return o.String(), e.String(), ee.ExitCode(), nil
	}
	if err != nil {
		return o.String(), e.String(), -1, fmt.Errorf("testrig: %s %s: %w: %s", strings.Join(in.DoveadmCmd, " "),
			strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), 0, nil
}

// Who returns the data rows of `doveadm who -1 args...` (header removed), one string per session.
func (in *Instance) Who(ctx context.Context, args ...string) ([]string, error) {
	out, code, err := in.Doveadm(ctx, append([]string{"who", "-1"}, args...)...)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, fmt.Errorf("testrig: doveadm who -1 exited %d", code)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) <= 1 {
		return nil, nil
	}
	return lines[1:], nil
}
