package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"github.com/kickagent/kickagent/internal/testrig"
)

// What one command did with a query, reduced to what the differential test
// compares: a kind and, for "ok", the multiset of selected rows.
const (
	kindOK    = "ok"    // exit 0 (kickagent kick also 2: partial, and 68: nothing selected)
	kindUsage = "usage" // exit 64 (EX_USAGE)
	kindCrash = "crash" // doveadm only: killed by a signal, exit >= 128, or a crash message
)

type outcome struct {
	kind   string // kindOK, kindUsage, kindCrash or "exit N"
	code   int    // exit code; -1 for a signal
	rows   []string
	stderr string
}

func (o outcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (exit %d)", o.kind, o.code)
	if e := strings.TrimSpace(o.stderr); e != "" && o.kind != kindOK {
		fmt.Fprintf(&b, " stderr: %.300q", e)
	}
	if o.kind == kindOK {
		fmt.Fprintf(&b, ", %d rows", len(o.rows))
		for _, r := range o.rows {
			fmt.Fprintf(&b, "\n      %q", r)
		}
	}
	return b.String()
}

// same reports whether two outcomes agree: the same kind and, when both
// listed, the same rows.
func same(a, b outcome) bool {
	return a.kind == b.kind && (a.kind != kindOK || slices.Equal(a.rows, b.rows))
}

// rowKey is how a session is compared: username, service, pid, client IP
// and (2.4) dest_ip, as the tools print them.
func rowKey(user, service, pid, ip, dest string, v24 bool) string {
	k := user + "\t" + service + "\t" + pid + "\t" + ip
	if v24 {
		k += "\t" + dest
	}
	return k
}

// runCmd runs argv and returns stdout, stderr, the exit code (-1 when a
// signal ended it) and whether that was a crash.
func runCmd(ctx context.Context, argv []string) (stdout, stderr string, code int, crashed bool, err error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		err = nil
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code, crashed = -1, true
		}
	default:
		return o.String(), e.String(), -1, false, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	se := e.String()
	if code >= 128 || strings.Contains(se, "Segmentation fault") || strings.Contains(se, "Panic:") ||
		strings.Contains(se, "Aborted") || strings.Contains(se, "core dumped") {
		crashed = true
	}
	return o.String(), se, code, crashed, nil
}

// doveadmWho runs `doveadm -f tab who -1 [-f field] args...` and parses its
// rows, keeping only sessions whose pid is in ours (other tests may share
// the instance).
func doveadmWho(ctx context.Context, inst *testrig.Instance, field string, args []string, ours map[string]bool) (outcome, error) {
	argv := append(doveadmNoConfig(inst), "-f", "tab", "who", "-1", "-a", doveadmAnvil(inst))
	if field != "" {
		argv = append(argv, "-f", field)
	}
	argv = append(argv, args...)
	out, errOut, code, crashed, err := runCmd(ctx, argv)
	if err != nil {
		return outcome{}, err
	}
	o := outcome{code: code, stderr: errOut}
	switch {
	case crashed:
		o.kind = kindCrash
	case code == 0:
		o.kind = kindOK
		o.rows, err = parseTab(out, inst.Is24(), ours)
		if err != nil {
			return outcome{}, fmt.Errorf("doveadm who -1 %q: %w", args, err)
		}
	case code == 64:
		o.kind = kindUsage
	default:
		o.kind = fmt.Sprintf("exit %d", code)
	}
	return o, nil
}

// doveadmNoConfig is the instance's doveadm command with -O (read no
// config) instead of -c: who needs only the anvil socket (given with -a),
// and skipping the config parse makes a 2.4 doveadm run 3x faster.
func doveadmNoConfig(inst *testrig.Instance) []string {
	var argv []string
	for _, a := range inst.DoveadmCmd {
		argv = append(argv, a)
		if a == "doveadm" || strings.HasSuffix(a, "/doveadm") {
			break
		}
	}
	return append(argv, "-O")
}

// doveadmAnvil is the anvil socket path as doveadm sees it (2.4 runs in a
// chroot).
func doveadmAnvil(inst *testrig.Instance) string {
	if inst.Chroot == "" {
		return inst.Anvil
	}
	return "/" + strings.TrimLeft(strings.TrimPrefix(inst.Anvil, inst.Chroot), "/")
}

// parseTab parses doveadm's -f tab output by its header.
func parseTab(out string, v24 bool, ours map[string]bool) ([]string, error) {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return nil, errors.New("no header line")
	}
	header := strings.Split(lines[0], "\t")
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	if _, ok := col["service"]; !ok {
		col["service"] = col["proto"] // 2.3
	}
	need := []string{"username", "service", "pid", "ip"}
	if v24 {
		need = append(need, "dest_ip")
	}
	for _, n := range need {
		if _, ok := col[n]; !ok {
			return nil, fmt.Errorf("no %s column in header %q", n, lines[0])
		}
	}
	rows := []string{}
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != len(header) {
			return nil, fmt.Errorf("short row %q", l)
		}
		if !ours[f[col["pid"]]] {
			continue
		}
		dest := ""
		if v24 {
			dest = f[col["dest_ip"]]
		}
		rows = append(rows, rowKey(f[col["username"]], f[col["service"]], f[col["pid"]], f[col["ip"]], dest, v24))
	}
	slices.Sort(rows)
	return rows, nil
}

// kaRecord is one JSON line of kickagent who --json or kick --json.
type kaRecord struct {
	whoRec
	Outcome    string `json:"outcome"`
	Collateral bool   `json:"collateral"`
}

// kickagentQuery runs `kickagent who -1 --json` (kick false) or `kickagent
// kick --dry-run --json` (kick true) for q. For kick, the rows are the
// sessions the command selected (not the collateral ones --force would add).
func kickagentQuery(ctx context.Context, inst *testrig.Instance, q query, kick bool, ours map[string]bool) (outcome, error) {
	argv := []string{bin, "who", "-1", "--json", "-a", inst.Anvil}
	if kick {
		// Always a dry run: the test must never kick anything.
		argv = []string{bin, "kick", "--dry-run", "--json", "-a", inst.Anvil}
		if q.dest != "" {
			argv = append(argv, "-h", q.dest)
		}
	}
	if q.field != "" {
		argv = append(argv, "-f", q.field)
	}
	argv = append(argv, "--")
	argv = append(argv, q.args...)
	out, errOut, code, crashed, err := runCmd(ctx, argv)
	if err != nil {
		return outcome{}, err
	}
	o := outcome{code: code, stderr: errOut}
	switch {
	case crashed:
		o.kind = kindCrash
	case code == 0 || (kick && (code == 2 || code == 68)):
		o.kind = kindOK
		o.rows = []string{}
		dec := json.NewDecoder(strings.NewReader(out))
		for dec.More() {
			var r kaRecord
			if err := dec.Decode(&r); err != nil {
				return outcome{}, fmt.Errorf("kickagent %q: bad JSON: %w\n%s", argv[1:], err, out)
			}
			if r.Collateral || !ours[fmt.Sprint(r.PID)] {
				continue
			}
			for range max(r.Connections, 1) { // doveadm -1 repeats a 2.3 row refcount times
				o.rows = append(o.rows, rowKey(r.User, r.Service, fmt.Sprint(r.PID), r.IP, r.DestIP, inst.Is24()))
			}
		}
		slices.Sort(o.rows)
	case code == 64:
		o.kind = kindUsage
	default:
		o.kind = fmt.Sprintf("exit %d", code)
	}
	return o, nil
}

// filterDest keeps the rows whose dest_ip equals dest the way doveadm kick
// 2.4.1 compares them (net_ip_compare: same address family and the same
// address bytes; a mapped IPv6 address is not its IPv4 address; the scope
// is not compared). An unparsable -h is doveadm's fatal "dest-host isn't a
// valid IP address" (exit 89).
func filterDest(o outcome, dest string) outcome {
	want, ok := parseDoveadmIP(dest)
	if !ok {
		return outcome{kind: "exit 89", code: 89, stderr: "dest-host isn't a valid IP address"}
	}
	if o.kind != kindOK {
		return o
	}
	out := o
	out.rows = []string{}
	for _, r := range o.rows {
		f := strings.Split(r, "\t")
		got, ok := parseDoveadmIP(f[len(f)-1])
		if ok && got.Is4() == want.Is4() && got.WithZone("") == want.WithZone("") {
			out.rows = append(out.rows, r)
		}
	}
	return out
}

// parseDoveadmIP reads an IP literal as 2.4's net_addr2ip does for the
// forms the generator uses ("[v6]" brackets allowed).
func parseDoveadmIP(s string) (netip.Addr, bool) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") && strings.Contains(s, ":") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}
