package bruteforce

// slab holds a generation's entries in fixed chunks: growing it never
// copies what it holds (a copy of a 20 MB slice would stall every request
// waiting on the lock) and wastes at most one partly used chunk.
type slab struct {
	chunks [][]entry
	n      int32
}

const (
	chunkBits = 10 // 1024 entries, 40 KiB
	chunkLen  = 1 << chunkBits
)

func (b *slab) at(i int32) *entry { return &b.chunks[i>>chunkBits][i&(chunkLen-1)] }

// push appends e and returns its index.
func (b *slab) push(e entry) int32 {
	i := b.n
	if int(i>>chunkBits) == len(b.chunks) {
		b.chunks = append(b.chunks, make([]entry, chunkLen))
	}
	*b.at(i) = e
	b.n++
	return i
}

// each calls f for every entry pushed since the last reset.
func (b *slab) each(f func(*entry)) {
	left := int(b.n)
	for _, c := range b.chunks {
		if left <= 0 {
			return
		}
		c = c[:min(left, chunkLen)]
		for i := range c {
			f(&c[i])
		}
		left -= len(c)
	}
}

// reset forgets the entries and keeps the chunks for reuse.
func (b *slab) reset() { b.n = 0 }
