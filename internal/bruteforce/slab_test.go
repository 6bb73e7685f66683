package bruteforce

import "testing"

func TestSlabAcrossChunks(t *testing.T) {
	var b slab
	for round := range 2 { // the second round reuses the chunks
		const n = 2*chunkLen + 3
		for i := range n {
			if got := b.push(entry{last: int64(i)}); got != int32(i) {
				t.Fatalf("round %d: push %d returned index %d", round, i, got)
			}
		}
		seen := 0
		b.each(func(e *entry) {
			if e.last != int64(seen) {
				t.Fatalf("round %d: entry %d has last %d", round, seen, e.last)
			}
			seen++
		})
		if seen != n || b.at(chunkLen).last != chunkLen {
			t.Fatalf("round %d: each saw %d entries, want %d; at(%d).last = %d", round, seen, n, chunkLen, b.at(chunkLen).last)
		}
		b.reset()
		b.each(func(*entry) { t.Fatalf("round %d: entry after reset", round) })
	}
	if len(b.chunks) != 3 {
		t.Errorf("%d chunks after two rounds of %d entries, want 3", len(b.chunks), 2*chunkLen+3)
	}
}
