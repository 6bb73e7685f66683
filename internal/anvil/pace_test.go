package anvil

import (
	"reflect"
	"testing"
	"time"
)

// chunks returns the scripted sizes one read at a time.
type chunks []int

func (c *chunks) Read(b []byte) (int, error) {
	n := min((*c)[0], len(b))
	*c = (*c)[1:]
	return n, nil
}

// TestPacedReader: on a 2.3 connection a read that follows a small one
// waits until paceNap has passed since it; reads after a full or large
// read, and every read when pacing is off, go straight through.
func TestPacedReader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		on    bool
		sizes []int         // what each read returns; every read offers 64 KB
		work  time.Duration // time between reads (parsing)
		want  []time.Duration
	}{
		{"off", false, []int{100, 100, 100}, 0, nil},
		{"small reads wait", true, []int{100, 200, 300}, 0, []time.Duration{paceNap, paceNap}},
		{"wait counts the time since the read", true, []int{100, 200}, 500 * time.Microsecond,
			[]time.Duration{paceNap - 500*time.Microsecond}},
		{"no wait after a long pause", true, []int{100, 200}, 3 * time.Millisecond, nil},
		{"full and large reads do not wait", true, []int{64 << 10, paceSmall, 100, 64 << 10, 100, 200}, 0,
			[]time.Duration{paceNap, paceNap}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1e9, 0)
			var slept []time.Duration
			src := chunks(tc.sizes)
			p := newPacedReader(&src)
			p.on = tc.on
			p.now = func() time.Time { return now }
			p.sleep = func(d time.Duration) { slept = append(slept, d); now = now.Add(d) }
			buf := make([]byte, 64<<10)
			for i, want := range tc.sizes {
				n, err := p.Read(buf)
				if err != nil || n != want {
					t.Fatalf("read %d: %d, %v; want %d", i, n, err, want)
				}
				now = now.Add(tc.work)
			}
			if !reflect.DeepEqual(slept, tc.want) {
				t.Errorf("slept %v, want %v", slept, tc.want)
			}
		})
	}
}

// TestPacedReaderFill: after a large previous dump on a 2.3 connection the
// first read waits fillWait from the command (minus the time already
// passed); after a small one, on 2.4 (pacing off), or for a later read,
// it does not.
func TestPacedReaderFill(t *testing.T) {
	for _, tc := range []struct {
		name string
		on   bool
		prev int
		want []time.Duration
	}{
		{"large previous dump", true, fillMin, []time.Duration{fillWait - time.Millisecond}},
		{"small previous dump", true, fillMin - 1, nil},
		{"first dump on the connection", true, 0, nil},
		{"2.4: not paced", false, 10 * fillMin, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1e9, 0)
			var slept []time.Duration
			src := chunks{64 << 10, 64 << 10}
			p := newPacedReader(&src)
			p.on = tc.on
			p.now = func() time.Time { return now }
			p.sleep = func(d time.Duration) { slept = append(slept, d); now = now.Add(d) }
			p.fill(tc.prev)
			now = now.Add(time.Millisecond) // the command's write
			buf := make([]byte, 64<<10)
			for range 2 {
				if _, err := p.Read(buf); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(slept, tc.want) {
				t.Errorf("slept %v, want %v", slept, tc.want)
			}
		})
	}
}
