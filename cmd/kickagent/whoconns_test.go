package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
)

// randomSnap has rows wider than the buffered ones, multi-byte names,
// missing alt columns and 2.3 refcounts: enough rows to wrap bufio's
// buffer many times.
func randomSnap(p anvil.Protocol, n int, seed uint64) *anvil.Snapshot {
	r := rand.New(rand.NewPCG(seed, 1))
	snap := &anvil.Snapshot{Protocol: p}
	if p == anvil.Proto24 {
		snap.AltNames = []string{"user_alt", "user_ext"}
	}
	names := []string{"anna", "jürgen", "ß", "x", "日本語"}
	for i := range n {
		s := anvil.Session{
			User:        fmt.Sprintf("%s%d@%s", names[r.IntN(len(names))], r.IntN(1<<uint(r.IntN(30))), strings.Repeat("e", r.IntN(3)*r.IntN(40))),
			Service:     []string{"imap", "pop3", "submission", "imap-login"}[r.IntN(4)],
			PID:         r.Int64N(1 << uint(r.IntN(40)+1)),
			Connections: 1,
		}
		if i%97 == 3 {
			s.User = ""
		}
		if r.IntN(10) > 0 {
			s.IP = netip.AddrFrom4([4]byte{byte(r.IntN(256)), 2, 0, byte(i)})
			if r.IntN(3) == 0 {
				s.IP = netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(i)})
			}
		}
		if p == anvil.Proto23 {
			s.Connections = 1 + r.IntN(3)*r.IntN(3)
		} else {
			if r.IntN(4) == 0 {
				s.DestIP = netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
			}
			alt := []string{strings.Repeat("é", r.IntN(5)), "ext" + strconv.Itoa(r.IntN(1<<uint(r.IntN(40))))}
			s.SetAlt(snap.AltNames, alt[:r.IntN(3)])
		}
		snap.Sessions = append(snap.Sessions, s)
	}
	return snap
}

// refConns is who -1 formatted naively: cells joined and padded to widths
// set by the titles and the rows of the first bufferedRows.
func refConns(snap *anvil.Snapshot) string {
	titles := []string{"username", "proto", "pid", "ip"}
	if snap.Protocol == anvil.Proto24 {
		titles = append([]string{"username", "service", "pid", "ip", "dest_ip"}, snap.AltNames...)
	}
	var rows [][]string
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		row := []string{s.User, s.Service, strconv.FormatInt(s.PID, 10), addr(s.IP)}
		if snap.Protocol == anvil.Proto24 {
			row = append(row, addr(s.DestIP))
			alt := s.AltValues()
			for j := range snap.AltNames {
				v := ""
				if j < len(alt) {
					v = alt[j]
				}
				row = append(row, v)
			}
		}
		for range max(s.Connections, 1) {
			rows = append(rows, row)
		}
	}
	width := make([]int, len(titles))
	seen := 0
	for _, r := range append([][]string{titles}, rows...) {
		if seen > bufferedRows {
			break
		}
		seen++
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range append([][]string{titles}, rows...) {
		var l string
		for i, c := range r {
			if i > 0 {
				l += " "
			}
			l += c + strings.Repeat(" ", max(width[i]-utf8.RuneCountInString(c), 0))
		}
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	return b.String()
}

func TestWhoConnsStreamedLikeNaive(t *testing.T) {
	for _, p := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		for seed := range uint64(3) {
			snap := randomSnap(p, 20000, seed)
			var out bytes.Buffer
			if err := writeWhoConns(&out, snap, &match.Filter{}); err != nil {
				t.Fatal(err)
			}
			if want := refConns(snap); out.String() != want {
				g, w := strings.Split(out.String(), "\n"), strings.Split(want, "\n")
				for i := range min(len(g), len(w)) {
					if g[i] != w[i] {
						t.Fatalf("%v seed %d line %d:\n got %q\nwant %q", p, seed, i, g[i], w[i])
					}
				}
				t.Fatalf("%v seed %d: %d lines, want %d", p, seed, len(g), len(w))
			}
		}
	}
}
