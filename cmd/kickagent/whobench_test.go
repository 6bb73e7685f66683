package main

import (
	"context"
	"io"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
	"github.com/kickagent/kickagent/internal/match"
	"github.com/kickagent/kickagent/internal/testrig"
)

// BenchmarkWhoAggregated23 is `kickagent who` on a fake Dovecot 2.3 anvil
// holding testrig.SyntheticMix(100000, 1): stream, group and print (to
// io.Discard). The fake writes the dump at once, so this is kickagent's
// own work, not 2.3's anvil's pace.
func BenchmarkWhoAggregated23(b *testing.B) {
	mix := testrig.StripFor23(testrig.SyntheticMix(100_000, 1))
	ss := make([]anvil.Session, len(mix))
	for i, m := range mix {
		ss[i] = anvil.Session{User: m.User, Service: m.Service, IP: m.IP, PID: int64(m.PID), Connections: 1}
	}
	srv := anviltest.New(b, anvil.Proto23, anviltest.WithDump(anvil.FormatDump23(ss)))
	cl := &anvil.Client{Path: srv.Path, Protocol: anvil.Proto23}
	var f match.Filter
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if code := whoAggregatedStream(ctx, cl, &f, io.Discard, io.Discard); code != exitOK {
			b.Fatalf("exit %d", code)
		}
	}
}
