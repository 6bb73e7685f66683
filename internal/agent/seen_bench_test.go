package agent

import (
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// The seen table's part of a steady agent cycle at 100,000 sessions: every
// session looked up while the dump arrives (prepare), then observed.
func BenchmarkSeen100k23(b *testing.B) { benchSeen(b, anviltest.Sessions23(100_000)) }
func BenchmarkSeen100k24(b *testing.B) { benchSeen(b, anviltest.Sessions24(100_000)) }

func benchSeen(b *testing.B, ss []anvil.Session) {
	var t seenTable
	now := time.Unix(1_700_000_000, 0)
	t.observe(ss, now)
	b.ReportAllocs()
	for b.Loop() {
		for i := range ss {
			t.prepare(i, &ss[i])
		}
		t.observe(ss, now)
	}
}
