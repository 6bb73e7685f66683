package integration

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// whoLogins cover IPv4 and IPv6 clients, IMAP and POP3, a user with two
// sessions and a username with a space.
var whoLogins = []login{
	{"alice", "127.0.0.2", "imap"},
	{"alice", "127.0.0.3", "pop3"},
	{"bob", "::1", "imap"},
	{"john doe", "127.0.0.4", "imap"},
	{"jane", "::1", "pop3"},
	{"jano", "127.0.0.5", "imap"},
}

// TestWhoMatchesDoveadm checks that kickagent who lists the same rows as
// doveadm who on the same anvil, aggregated and with -1, with filters.
func TestWhoMatchesDoveadm(t *testing.T) {
	for _, name := range []string{"v23", "v24"} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			inst := instance(t, name)
			hs := hold(t, ctx, inst, whoLogins...)
			waitListed(t, ctx, inst, hs)
			cases := [][]string{
				{}, {"-1"},
				{"JAN*"}, {"-1", "jan?"},
				{"-1", "127.0.0.0/8"}, {"::1"}, {"-1", "::1"},
				{"-1", "alice", "127.0.0.3"}, {"-1", "0.0.0.0/0"}, {"ALICE"},
				{"-1", "john*"},
			}
			for _, args := range cases {
				compareWho(t, ctx, inst, args)
			}
		})
	}
}

// compareWho compares one listing; sessions of other tests may come and go
// between the two dumps, so a mismatch is retried before it fails.
func compareWho(t *testing.T, ctx context.Context, inst *testrig.Instance, args []string) {
	t.Helper()
	var got, want []string
	for try := 0; try < 3; try++ {
		out, errOut, code := kickagent(t, ctx, append([]string{"who", "-a", inst.Anvil}, args...)...)
		if code != 0 {
			t.Fatalf("%s: kickagent who %v: exit %d: %s", inst.Name, args, code, errOut)
		}
		got = tableRows(out)
		dout, dcode, err := inst.Doveadm(ctx, append([]string{"-f", "tab", "who"}, args...)...)
		if err != nil || dcode != 0 {
			t.Fatalf("%s: doveadm who %v: exit %d: %v", inst.Name, args, dcode, err)
		}
		want = tabRows(dout)
		if slices.Equal(got, want) {
			if len(got) == 0 && len(args) != 1 {
				t.Fatalf("%s: who %v listed nothing", inst.Name, args)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("%s: who %v\nkickagent:\n  %s\ndoveadm:\n  %s", inst.Name, args,
		strings.Join(got, "\n  "), strings.Join(want, "\n  "))
}

// tabRows parses doveadm -f tab output (header line, then TAB-separated
// rows) into normalized, sorted rows.
func tabRows(out string) []string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var rows []string
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		rows = append(rows, normRow(strings.Split(l, "\t")))
	}
	slices.Sort(rows)
	return rows
}

// tableRows parses kickagent's aligned table by the header's column starts.
func tableRows(out string) []string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var starts []int
	h := lines[0]
	for i := 0; i < len(h); i++ {
		if h[i] != ' ' && (i == 0 || h[i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	var rows []string
	for _, l := range lines[1:] {
		var f []string
		for i, s := range starts {
			end := len(l)
			if i+1 < len(starts) {
				end = min(starts[i+1], len(l))
			}
			if s > len(l) {
				f = append(f, "")
				continue
			}
			f = append(f, l[s:end])
		}
		rows = append(rows, normRow(f))
	}
	slices.Sort(rows)
	return rows
}

// normRow trims cells and sorts the members of "(a b c)" lists, whose
// order is anvil's hash order.
func normRow(f []string) string {
	out := make([]string, len(f))
	for i, c := range f {
		c = strings.TrimSpace(c)
		if strings.HasPrefix(c, "(") && strings.HasSuffix(c, ")") {
			items := strings.Fields(c[1 : len(c)-1])
			slices.Sort(items)
			c = "(" + strings.Join(items, " ") + ")"
		}
		out[i] = c
	}
	return strings.Join(out, "|")
}
