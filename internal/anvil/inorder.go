package anvil

// InOrder follows the calls of a DumpEach callback for work that is valid
// only for a whole dump: it tells whether sessions 0, 1, … n-1 came in
// order since the last call for session 0 (a dump retried on a new
// connection starts again at 0). The zero value expects session 0.
type InOrder struct{ n int }

// Next counts session i and reports whether it continues the order. Once
// one does not, none does until session 0 comes again.
func (o *InOrder) Next(i int) bool {
	if i == 0 {
		o.n = 0
	}
	if i != o.n {
		o.n = -1
		return false
	}
	o.n++
	return true
}

// Whole reports whether exactly sessions 0 … n-1 came, in order.
func (o *InOrder) Whole(n int) bool { return o.n == n }

// Void forgets what came: Whole is false until session 0 comes again.
func (o *InOrder) Void() { o.n = -1 }
