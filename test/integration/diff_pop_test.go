package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// population is what one target holds for the differential test: real
// logged-in sessions and synthetic ones. Only these sessions (by pid) are
// compared, so sessions of other tests on a shared instance do not count.
type population struct {
	inst    *testrig.Instance
	ours    map[string]bool // pids of our sessions
	rows    int             // rows doveadm who -1 lists for them
	last    []string        // those rows at the last check
	names   []string
	altVals []string
	ips     []string
	dests   []string
}

func newPopulation(inst *testrig.Instance) *population {
	return &population{inst: inst, ours: map[string]bool{}}
}

// ourRows lists our sessions as doveadm who -1 does (all of them).
func (p *population) ourRows(ctx context.Context) ([]string, error) {
	o, err := doveadmWho(ctx, p.inst, "", nil, p.ours)
	if err != nil {
		return nil, err
	}
	if o.kind != kindOK {
		return nil, fmt.Errorf("%s: doveadm who -1: %s", p.inst.Name, o)
	}
	return o.rows, nil
}

// allPIDs returns the pid of every session anvil lists now.
func allPIDs(ctx context.Context, inst *testrig.Instance) (map[string][]string, error) {
	out, errOut, code, _, err := runCmd(ctx, append(doveadmNoConfig(inst), "-f", "tab", "who", "-1", "-a", doveadmAnvil(inst)))
	if err != nil || code != 0 {
		return nil, fmt.Errorf("%s: doveadm who -1: exit %d %v %s", inst.Name, code, err, errOut)
	}
	pids := map[string][]string{}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) >= 4 {
			pids[f[2]] = append(pids[f[2]], f[0])
		}
	}
	return pids, nil
}

// logIn logs the sessions in, waits until anvil lists them and adds their
// pids: those that were not listed before and hold one of these users.
func (p *population) logIn(t *testing.T, ctx context.Context, logins []login) {
	t.Helper()
	before, err := allPIDs(ctx, p.inst)
	if err != nil {
		t.Fatal(err)
	}
	hold(t, ctx, p.inst, logins...)
	users := map[string]bool{}
	for _, l := range logins {
		users[l.user] = true
		p.addName(l.user)
		p.addIP(l.src)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		now, err := allPIDs(ctx, p.inst)
		if err != nil {
			t.Fatal(err)
		}
		var fresh []string
		for pid, us := range now {
			if _, old := before[pid]; !old && slices.ContainsFunc(us, func(u string) bool { return users[u] }) {
				fresh = append(fresh, pid)
			}
		}
		if len(fresh) >= len(logins) {
			for _, pid := range fresh {
				p.ours[pid] = true
			}
			p.rows += len(logins)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: anvil lists %d of %d logged-in sessions", p.inst.Name, len(fresh), len(logins))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// register adds synthetic sessions; they are unregistered at the end of
// the test (or earlier through the returned connection).
func (p *population) register(t *testing.T, ctx context.Context, ss []testrig.SyntheticSession) *testrig.SyntheticConn {
	t.Helper()
	sc, err := testrig.RegisterSynthetic(ctx, p.inst, ss)
	if err != nil {
		t.Fatalf("%s: register synthetic sessions: %v", p.inst.Name, err)
	}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sc.Disconnect(dctx) // no-op when already disconnected
	})
	for _, s := range ss {
		p.ours[strconv.Itoa(s.PID)] = true
		p.addName(s.User)
		for _, a := range s.Alt {
			p.addAlt(a.Value)
		}
		if s.IP.IsValid() {
			p.addIP(s.IP.String())
		}
		if s.DestIP.IsValid() {
			p.dests = appendNew(p.dests, s.DestIP.String())
		}
		if s.DestIPText != "" {
			p.dests = appendNew(p.dests, s.DestIPText)
		}
	}
	p.rows += len(ss)
	return sc
}

// unregister removes synthetic sessions registered through sc.
func (p *population) unregister(ctx context.Context, sc *testrig.SyntheticConn) error {
	for _, s := range sc.Sessions() {
		delete(p.ours, strconv.Itoa(s.PID))
		p.rows--
	}
	return sc.Disconnect(ctx)
}

func (p *population) addName(s string) { p.names = appendNew(p.names, s) }
func (p *population) addAlt(s string) {
	if s != "" {
		p.altVals = appendNew(p.altVals, s)
	}
}
func (p *population) addIP(s string) { p.ips = appendNew(p.ips, s) }

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// checkPresent fails t unless doveadm lists exactly our sessions' rows.
func (p *population) checkPresent(t *testing.T, ctx context.Context) []string {
	t.Helper()
	rows, err := p.ourRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != p.rows || p.rows == 0 {
		var gone []string
		for _, r := range p.last {
			if !slices.Contains(rows, r) {
				gone = append(gone, r)
			}
		}
		t.Fatalf("%s: population missing: doveadm who -1 lists %d of our %d sessions; gone since the last check (kicked by another test?):\n  %s",
			p.inst.Name, len(rows), p.rows, strings.Join(gone, "\n  "))
	}
	p.last = rows
	return rows
}

// crashSafeFields returns the alt fields of the anvil header on which
// 2.4.1's `who -1 -f FIELD` does not crash now: it dereferences NULL when
// a session's alt list ends exactly at FIELD's index, so a field is safe
// when no session (ours or not) has exactly that many alt columns.
func crashSafeFields(ctx context.Context, inst *testrig.Instance) (header, safe []string, err error) {
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "unix", inst.Anvil)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	r := bufio.NewReaderSize(c, 1<<16)
	if _, err := r.ReadString('\n'); err != nil {
		return nil, nil, fmt.Errorf("anvil greeting: %w", err)
	}
	if _, err := c.Write([]byte("VERSION\tanvil-client\t2\t0\n\nCONNECT-DUMP\n")); err != nil {
		return nil, nil, err
	}
	h, err := r.ReadString('\n')
	if err != nil {
		return nil, nil, err
	}
	if h = strings.TrimSuffix(h, "\n"); h != "" {
		header = strings.Split(h, "\t")
	}
	ends := map[int]bool{}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return nil, nil, fmt.Errorf("anvil dump: %w", err)
		}
		if l == "\n" {
			break
		}
		ends[strings.Count(l, "\t")+1-6] = true
	}
	for i, f := range header {
		if !ends[i] {
			safe = append(safe, f)
		}
	}
	return header, safe, nil
}

// Real sessions: the alt-phase users carry both alt fields on 2.4
// (user_alt and user_ext), the others only user_alt.
var (
	diffLoginsBoth = []login{
		{"alice", "127.0.0.2", "imap"}, {"alice", "127.0.0.3", "pop3"},
		{"jane", "::1", "imap"}, {"james", "127.0.0.4", "pop3"},
	}
	diffLoginsRest = []login{
		{"bob", "::1", "pop3"}, {"carol", "127.0.0.5", "imap"}, {"jano", "127.0.0.5", "pop3"},
		{"dave", "127.0.0.6", "imap"}, {"eve", "127.0.0.2", "imap"},
		{"john doe", "127.0.0.7", "imap"}, {"john doe", "::1", "pop3"},
	}
)

// crafted returns the synthetic sessions of the main population, pids from
// pid on. On 2.4 every one carries both alt fields, so that -f does not
// crash doveadm on them.
func crafted(v24 bool, pid int) []testrig.SyntheticSession {
	a := netip.MustParseAddr
	ss := []testrig.SyntheticSession{
		{User: "star*user", IP: a("10.1.2.3")},
		{User: "q?user", IP: a("192.0.2.55")},
		{User: "jürgen", IP: a("2001:db8::1:5")},
		{User: "MiXeD.Case", IP: a("127.0.0.200")},
		{User: "user with space", IP: a("2001:db8:0:1::7")},
		{User: "ALICE@example.com", IP: a("10.200.0.1")},
		{User: "*", IP: a("127.0.0.9")},
		{User: "?", IP: a("127.0.0.10")},
		{User: "1234", IP: a("127.0.0.11")},
		{User: "alice", Service: "pop3", IP: a("10.9.8.7")},
		{User: "zone-lo", IP: a("fe80::1%lo")},
		{User: "zone-num", IPText: "fe80::2%1"},
		{User: "mapped", IP: a("::ffff:127.0.0.9")},
		{User: "upper6", IPText: "2001:DB8::A"},
		{User: "v6full", IP: a("2001:db8:1:2:3:4:5:6")},
	}
	if v24 {
		ss = append(ss,
			testrig.SyntheticSession{User: "", IP: a("127.0.0.12")},
			testrig.SyntheticSession{User: "noip"},
			testrig.SyntheticSession{User: "midempty", IP: a("127.0.0.13"),
				Alt: []testrig.AltField{{Key: "user_alt", Value: ""}, {Key: "user_ext", Value: "mid-ext"}}},
			testrig.SyntheticSession{User: "proxied1", Service: "imap-login", IP: a("127.0.0.14"), DestIP: a("10.1.0.1")},
			testrig.SyntheticSession{User: "proxied2", Service: "imap-login", IP: a("2001:db8::14"), DestIP: a("10.1.0.2")},
			testrig.SyntheticSession{User: "proxied6", Service: "pop3-login", IP: a("127.0.0.15"), DestIP: a("2001:db8::10")},
			testrig.SyntheticSession{User: "proxiedmap", Service: "imap-login", IP: a("127.0.0.16"), DestIPText: "::ffff:10.1.0.3"},
			testrig.SyntheticSession{User: "proxiedzone", Service: "imap-login", IP: a("127.0.0.17"), DestIP: a("fe80::1%lo")},
		)
	} else {
		ss = append(ss, testrig.SyntheticSession{User: "refcount2", IP: a("127.0.0.18")})
	}
	for i := range ss {
		s := &ss[i]
		if s.Service == "" {
			s.Service = "imap"
		}
		s.PID = pid + i
		if v24 && s.Alt == nil {
			base := strings.ReplaceAll(s.User, " ", "_")
			s.Alt = []testrig.AltField{{Key: "user_alt", Value: base + "-alt"}, {Key: "user_ext", Value: base + "@ext.example"}}
		}
	}
	if !v24 { // one 2.3 record with refcount 2: doveadm -1 prints it twice
		ss = append(ss, ss[len(ss)-1])
	}
	return excludeUsers(ss, os.Getenv("KICKAGENT_DIFF_EXCLUDE"))
}

// excludeUsers drops the sessions of the comma-separated users: to see what
// else differs while one crafted session breaks every query (for
// diagnosis only; the test logs it).
func excludeUsers(ss []testrig.SyntheticSession, list string) []testrig.SyntheticSession {
	if list == "" {
		return ss
	}
	drop := strings.Split(list, ",")
	return slices.DeleteFunc(ss, func(s testrig.SyntheticSession) bool { return slices.Contains(drop, s.User) })
}

// crashers returns sessions that make doveadm crash: on 2.4.1 `who -1 -f`
// on the first alt field (no alt columns) and on the second (the trailing
// columns omitted); on 2.3.19.1 the aggregated `who` (an empty username).
func crashers(v24 bool, pid int) []testrig.SyntheticSession {
	a := netip.MustParseAddr
	if !v24 {
		return []testrig.SyntheticSession{{User: "", Service: "imap", IP: a("127.0.0.19"), PID: pid}}
	}
	return []testrig.SyntheticSession{
		{User: "noalt", Service: "imap", IP: a("127.0.0.19"), PID: pid},
		{User: "trail", Service: "imap", IP: a("127.0.0.20"), PID: pid + 1,
			Alt: []testrig.AltField{{Key: "user_alt", Value: "trail-alt"}}},
	}
}
