package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
)

const (
	guid1 = "3f1c0a9e5b7d4c2a8e6f1b3d5c7a9e0f"
	guid2 = "9a8b7c6d5e4f30211203f4e5d6c7b8a9"
	guid3 = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	guid4 = "00112233445566778899aabbccddeeff"
)

func ip(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

// snap23 is a 2.3 table in anvil's (hash) order: alice's imap records
// come in pid order 300, 100, 100 with a refcount of 2 and a repeated IP.
func snap23() *anvil.Snapshot {
	return &anvil.Snapshot{Protocol: anvil.Proto23, Sessions: []anvil.Session{
		{Service: "imap", User: "alice", IP: ip("192.0.2.10"), PID: 300, Connections: 1},
		{Service: "imap", User: "bob", IP: ip("::1"), PID: 200, Connections: 1},
		{Service: "imap", User: "alice", IP: ip("192.0.2.10"), PID: 100, Connections: 2},
		{Service: "lmtp", User: "carol", PID: 500, Connections: 1},
		{Service: "imap", User: "alice", IP: ip("192.0.2.11"), PID: 100, Connections: 1},
		{Service: "pop3", User: "alice", IP: ip("192.0.2.10"), PID: 400, Connections: 1},
	}}
}

var altNames = []string{"user_alias", "user_ext"}

func snap24() *anvil.Snapshot {
	ss := []anvil.Session{
		{Service: "imap-login", User: "alice", IP: ip("198.51.100.7"), PID: 200, ConnGUID: guid2, DestIP: ip("10.0.0.5"), Connections: 1},
		{Service: "imap", User: "alice", IP: ip("192.0.2.10"), PID: 100, ConnGUID: guid1, Connections: 1},
		{Service: "imap", User: "bob", IP: ip("::1"), PID: 300, ConnGUID: guid3, Connections: 1},
		{Service: "lmtp", User: "carol", PID: 400, ConnGUID: guid4, Connections: 1},
	}
	ss[0].SetAlt(altNames, []string{"", "a@ext"})     // middle column empty
	ss[1].SetAlt(altNames, []string{"ally", "a@ext"}) // both
	ss[2].SetAlt(altNames, []string{"bobby"})         // trailing column absent
	ss[3].SetAlt(altNames, nil)                       // none
	return &anvil.Snapshot{Protocol: anvil.Proto24, AltNames: altNames, Sessions: ss}
}

// cells splits table output into the header's titles and the rows' cells,
// cutting each row where the titles start: columns are never truncated, so
// that also recovers empty cells.
func cells(t *testing.T, out string) (titles []string, rows [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header := []rune(lines[0])
	var starts []int
	for i, r := range header {
		if r != ' ' && (i == 0 || header[i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	titles = strings.Fields(lines[0])
	for _, l := range lines[1:] {
		r := []rune(l)
		row := make([]string, len(starts))
		for i, s := range starts {
			end := len(r)
			if i+1 < len(starts) {
				end = min(starts[i+1], len(r))
			}
			if s < len(r) {
				row[i] = strings.TrimSpace(string(r[s:end]))
			}
			// A value ending exactly before the next title's start must
			// be followed by the separating space.
			if i+1 < len(starts) && end < len(r) && end > 0 && r[end-1] != ' ' {
				t.Fatalf("row %q: column %d overflows into column %d", l, i, i+1)
			}
		}
		rows = append(rows, row)
	}
	return titles, rows
}

func rowsOf(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.Join(r, "|")
	}
	return out
}

func writeOut(t *testing.T, fn func(*bytes.Buffer) error) string {
	t.Helper()
	var b bytes.Buffer
	if err := fn(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWhoAggregated23(t *testing.T) {
	out := writeOut(t, func(b *bytes.Buffer) error { return writeWhoAggregated(b, snap23(), &match.Filter{}) })
	titles, rows := cells(t, out)
	if want := []string{"username", "#", "proto", "(pids)", "(ips)"}; !slices.Equal(titles, want) {
		t.Errorf("titles %q, want %q", titles, want)
	}
	want := []string{
		// refcounts summed (1+2+1); pids in the dump's order, once each;
		// IPs once each
		"alice|4|imap|(300 100)|(192.0.2.10 192.0.2.11)",
		"alice|1|pop3|(400)|(192.0.2.10)",
		"bob|1|imap|(200)|(::1)",
		"carol|1|lmtp|(500)|()",
	}
	// -1 rows come in anvil's order, as doveadm prints them.
	slices.Sort(want)
	if got := sortedRows(rows); !slices.Equal(got, want) {
		t.Errorf("rows:\n%s\nwant:\n%s\noutput:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}
}

func TestWhoAggregated24(t *testing.T) {
	snap := snap24()
	// Sessions without a username (2.4) are grouped by IP as well.
	snap.Sessions = append(snap.Sessions,
		anvil.Session{Service: "imap-login", IP: ip("192.0.2.99"), PID: 600, ConnGUID: guid1, Connections: 1},
		anvil.Session{Service: "imap-login", IP: ip("192.0.2.98"), PID: 601, ConnGUID: guid2, Connections: 1},
		anvil.Session{Service: "imap-login", IP: ip("192.0.2.99"), PID: 602, ConnGUID: guid3, Connections: 1},
	)
	out := writeOut(t, func(b *bytes.Buffer) error { return writeWhoAggregated(b, snap, &match.Filter{}) })
	titles, rows := cells(t, out)
	if want := []string{"username", "#", "service", "(pids)", "(ips)"}; !slices.Equal(titles, want) {
		t.Errorf("titles %q, want %q", titles, want)
	}
	got := rowsOf(rows)
	want := []string{
		"|2|imap-login|(600 602)|(192.0.2.99)",
		"|1|imap-login|(601)|(192.0.2.98)",
		"alice|1|imap|(100)|(192.0.2.10)",
		"alice|1|imap-login|(200)|(198.51.100.7)",
		"bob|1|imap|(300)|(::1)",
		"carol|1|lmtp|(400)|()",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWhoAggregatedFilter(t *testing.T) {
	tests := []struct {
		args []string
		alt  string
		want []string
	}{
		{[]string{"A*"}, "", []string{"alice|4|imap", "alice|1|pop3"}},
		// the network matches any IP of the group
		{[]string{"192.0.2.11"}, "", []string{"alice|4|imap"}},
		{[]string{"::/0"}, "", []string{"alice|4|imap", "alice|1|pop3", "bob|1|imap", "carol|1|lmtp"}},
		{[]string{"::1/128"}, "", []string{"bob|1|imap"}},
		{[]string{"nobody"}, "", nil},
	}
	for _, tc := range tests {
		f, err := match.Parse(tc.args, tc.alt)
		if err != nil {
			t.Fatal(err)
		}
		out := writeOut(t, func(b *bytes.Buffer) error { return writeWhoAggregated(b, snap23(), &f) })
		_, rows := cells(t, out)
		var got []string
		for _, r := range rows {
			got = append(got, strings.Join(r[:3], "|"))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: rows %q, want %q", tc.args, got, tc.want)
		}
	}
	// -f: a group matches when any of its sessions' alt value does.
	f, _ := match.Parse([]string{"ALLY"}, "user_alias")
	_, rows := cells(t, writeOut(t, func(b *bytes.Buffer) error { return writeWhoAggregated(b, snap24(), &f) }))
	if got := rowsOf(rows); len(got) != 1 || !strings.HasPrefix(got[0], "alice|1|imap|") {
		t.Errorf("-f user_alias ALLY: %q", got)
	}
}

func TestWhoConns23(t *testing.T) {
	out := writeOut(t, func(b *bytes.Buffer) error { return writeWhoConns(b, snap23(), &match.Filter{}) })
	titles, rows := cells(t, out)
	if want := []string{"username", "proto", "pid", "ip"}; !slices.Equal(titles, want) {
		t.Errorf("titles %q, want %q", titles, want)
	}
	want := []string{
		"alice|imap|100|192.0.2.10", // refcount 2: the record is repeated
		"alice|imap|100|192.0.2.10",
		"alice|imap|100|192.0.2.11",
		"alice|imap|300|192.0.2.10",
		"alice|pop3|400|192.0.2.10",
		"bob|imap|200|::1",
		"carol|lmtp|500|",
	}
	// -1 rows come in anvil's order, as doveadm prints them.
	slices.Sort(want)
	if got := sortedRows(rows); !slices.Equal(got, want) {
		t.Errorf("rows:\n%s\nwant:\n%s\noutput:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}
}

func TestWhoConns24(t *testing.T) {
	out := writeOut(t, func(b *bytes.Buffer) error { return writeWhoConns(b, snap24(), &match.Filter{}) })
	titles, rows := cells(t, out)
	if want := []string{"username", "service", "pid", "ip", "dest_ip", "user_alias", "user_ext"}; !slices.Equal(titles, want) {
		t.Errorf("titles %q, want %q", titles, want)
	}
	want := []string{
		"alice|imap|100|192.0.2.10||ally|a@ext",
		"alice|imap-login|200|198.51.100.7|10.0.0.5||a@ext",
		"bob|imap|300|::1||bobby|", // trailing column padded
		"carol|lmtp|400||||",
	}
	// -1 rows come in anvil's order, as doveadm prints them.
	slices.Sort(want)
	if got := sortedRows(rows); !slices.Equal(got, want) {
		t.Errorf("rows:\n%s\nwant:\n%s\noutput:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}

	// -1 with -f matches the alt field; a session lacking it never matches.
	f, _ := match.Parse([]string{"*"}, "user_ext")
	_, rows = cells(t, writeOut(t, func(b *bytes.Buffer) error { return writeWhoConns(b, snap24(), &f) }))
	if got := sortedRows(rows); len(got) != 2 || !strings.HasPrefix(got[1], "alice|imap|") || !strings.HasPrefix(got[0], "alice|imap-login|") {
		t.Errorf("-f user_ext '*': %q", got)
	}
}

// Columns stay aligned with wide (multi-byte) values.
func TestWhoConnsAlignment(t *testing.T) {
	snap := &anvil.Snapshot{Protocol: anvil.Proto23, Sessions: []anvil.Session{
		{Service: "imap", User: "jürgen.müller@example.com", IP: ip("192.0.2.1"), PID: 1, Connections: 1},
		{Service: "submission", User: "x", IP: ip("2001:db8::1234:5678"), PID: 1234567, Connections: 1},
	}}
	out := writeOut(t, func(b *bytes.Buffer) error { return writeWhoConns(b, snap, &match.Filter{}) })
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	col := func(l, v string) int { return utf8.RuneCountInString(l[:strings.Index(l, v)]) }
	if a, b, c := col(lines[0], "pid"), col(lines[1], "1 "), col(lines[2], "1234567"); a != b || b != c {
		t.Errorf("pid column not aligned (%d %d %d):\n%s", a, b, c, out)
	}
}

func TestWhoJSON(t *testing.T) {
	for _, tc := range []struct {
		snap *anvil.Snapshot
		want []map[string]any
	}{
		{snap23(), []map[string]any{
			{"user": "alice", "service": "imap", "pid": 100.0, "ip": "192.0.2.10", "conn_guid": "", "dest_ip": "", "alt": map[string]any{}, "connections": 2.0},
			{"user": "alice", "service": "imap", "pid": 100.0, "ip": "192.0.2.11", "conn_guid": "", "dest_ip": "", "alt": map[string]any{}, "connections": 1.0},
			{"user": "alice", "service": "imap", "pid": 300.0, "ip": "192.0.2.10", "conn_guid": "", "dest_ip": "", "alt": map[string]any{}, "connections": 1.0},
			{"user": "alice", "service": "pop3", "pid": 400.0, "ip": "192.0.2.10", "conn_guid": "", "dest_ip": "", "alt": map[string]any{}, "connections": 1.0},
			{"user": "bob", "service": "imap", "pid": 200.0, "ip": "::1", "conn_guid": "", "dest_ip": "", "alt": map[string]any{}, "connections": 1.0},
			{"user": "carol", "service": "lmtp", "pid": 500.0, "ip": "", "conn_guid": "", "dest_ip": "", "alt": map[string]any{}, "connections": 1.0},
		}},
		{snap24(), []map[string]any{
			{"user": "alice", "service": "imap", "pid": 100.0, "ip": "192.0.2.10", "conn_guid": guid1, "dest_ip": "",
				"alt": map[string]any{"user_alias": "ally", "user_ext": "a@ext"}, "connections": 1.0},
			{"user": "alice", "service": "imap-login", "pid": 200.0, "ip": "198.51.100.7", "conn_guid": guid2, "dest_ip": "10.0.0.5",
				"alt": map[string]any{"user_alias": "", "user_ext": "a@ext"}, "connections": 1.0}, // an empty column is a value
			{"user": "bob", "service": "imap", "pid": 300.0, "ip": "::1", "conn_guid": guid3, "dest_ip": "",
				"alt": map[string]any{"user_alias": "bobby"}, "connections": 1.0},
			{"user": "carol", "service": "lmtp", "pid": 400.0, "ip": "", "conn_guid": guid4, "dest_ip": "",
				"alt": map[string]any{}, "connections": 1.0},
		}},
	} {
		out := writeOut(t, func(b *bytes.Buffer) error { return writeWhoJSON(b, tc.snap, &match.Filter{}) })
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		// Records come in anvil's order; compare in (user, service, pid, ip) order.
		slices.SortStableFunc(lines, func(a, b string) int {
			var x, y struct {
				User, Service, IP string
				PID               int
			}
			_ = json.Unmarshal([]byte(a), &x)
			_ = json.Unmarshal([]byte(b), &y)
			return cmp.Or(strings.Compare(x.User, y.User), strings.Compare(x.Service, y.Service), x.PID-y.PID, strings.Compare(x.IP, y.IP))
		})
		if len(lines) != len(tc.want) {
			t.Fatalf("%s: %d JSON lines, want %d:\n%s", tc.snap.Protocol, len(lines), len(tc.want), out)
		}
		for i, l := range lines {
			var got map[string]any
			if err := json.Unmarshal([]byte(l), &got); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			keys := make([]string, 0, len(got))
			for k := range got {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if want := []string{"alt", "conn_guid", "connections", "dest_ip", "ip", "pid", "service", "user"}; !slices.Equal(keys, want) {
				t.Errorf("keys %q, want exactly %q", keys, want)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tc.want[i])
			if !bytes.Equal(gj, wj) {
				t.Errorf("%s record %d:\n got %s\nwant %s", tc.snap.Protocol, i, gj, wj)
			}
		}
	}
}

func TestWhoJSONEscaping(t *testing.T) {
	snap := &anvil.Snapshot{Protocol: anvil.Proto23, Sessions: []anvil.Session{
		{Service: "imap", User: "a<b>&\t\"c\"", PID: 1, Connections: 1},
	}}
	out := writeOut(t, func(b *bytes.Buffer) error { return writeWhoJSON(b, snap, &match.Filter{}) })
	if !strings.Contains(out, `"user":"a<b>&\t\"c\""`) {
		t.Errorf("output %s", out)
	}
}

func TestWhoEmpty(t *testing.T) {
	for _, snap := range []*anvil.Snapshot{{Protocol: anvil.Proto23}, {Protocol: anvil.Proto24}} {
		out := writeOut(t, func(b *bytes.Buffer) error { return writeWhoAggregated(b, snap, &match.Filter{}) })
		if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "username") {
			t.Errorf("empty aggregated: %q", out)
		}
		out = writeOut(t, func(b *bytes.Buffer) error { return writeWhoJSON(b, snap, &match.Filter{}) })
		if out != "" {
			t.Errorf("empty JSON: %q", out)
		}
	}
}

// sortedRows is rowsOf in sorted order.
func sortedRows(rows [][]string) []string {
	got := rowsOf(rows)
	slices.Sort(got)
	return got
}
