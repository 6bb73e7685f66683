package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/snapshot"
)

// disk is a file on a device of limited size: a write that does not fit
// writes what fits and fails with ENOSPC, as write(2) does.
type disk struct {
	data     bytes.Buffer
	free     int
	truncErr error
}

func (d *disk) Write(p []byte) (int, error) {
	if len(p) <= d.free {
		d.free -= len(p)
		return d.data.Write(p)
	}
	n := d.free
	d.data.Write(p[:n])
	d.free = 0
	return n, syscall.ENOSPC
}

func (d *disk) Seek(off int64, whence int) (int64, error) {
	if off != 0 || whence != io.SeekCurrent {
		return 0, errors.New("unsupported seek")
	}
	return int64(d.data.Len()), nil
}

func (d *disk) Truncate(size int64) error {
	if d.truncErr != nil {
		return d.truncErr
	}
	d.free += d.data.Len() - int(size)
	d.data.Truncate(int(size))
	return nil
}

func rec(user string) *Record {
	return &Record{Time: time.Unix(1700000000, 0).UTC(), Result: Kicked, Rule: "r", Record: snapshot.Record{User: user}}
}

// lines parses every line as one record and returns the users in order.
func lines(t *testing.T, b []byte) []string {
	t.Helper()
	var users []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for i := 1; sc.Scan(); i++ {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d is not one record: %v: %q", i, err, sc.Text())
		}
		users = append(users, r.User)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("the file ends with a partial line: %q", b[bytes.LastIndexByte(b, '\n')+1:])
	}
	return users
}

// A full disk leaves no partial line, loses no record, and the log
// recovers once space is freed (before: bufio kept the first error
// forever, the last line was cut mid-JSON and nothing more was written).
func TestLogFullDiskRecovers(t *testing.T) {
	one, _ := encode(rec("u00"))
	d := &disk{free: len(one)*2 + len(one)/2} // two and a half lines
	l := New(d)
	var want []string
	for i := range 6 {
		u := "u0" + string(rune('0'+i))
		want = append(want, u)
		_ = l.Write(rec(u))
		_ = l.Flush()
	}
	if got := lines(t, d.data.Bytes()); len(got) != 2 {
		t.Fatalf("on the full disk: %d lines %v, want the 2 that fit", len(got), got)
	}
	if err := l.Flush(); err == nil {
		t.Fatal("Flush with records that do not fit: nil error")
	}
	d.free += 10 * len(one) // space freed
	for i := 6; i < 8; i++ {
		u := "u0" + string(rune('0'+i))
		want = append(want, u)
		if err := l.Write(rec(u)); err != nil {
			t.Fatalf("write after space was freed: %v", err)
		}
	}
	if err := l.Flush(); err != nil {
		t.Fatalf("flush after space was freed: %v", err)
	}
	if got := lines(t, d.data.Bytes()); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after recovery the file has %v, want %v", got, want)
	}
}

func TestLogErrAndFlush(t *testing.T) {
	one, _ := encode(rec("a"))
	d := &disk{free: len(one)}
	l := New(d)
	if err := l.Write(rec("a")); err != nil || l.Flush() != nil || l.Err() != nil {
		t.Fatalf("first write: %v, Err %v", err, l.Err())
	}
	if err := l.Write(rec("b")); err != nil {
		t.Fatalf("Write queues: %v", err)
	}
	err := l.Flush()
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(l.Err(), syscall.ENOSPC) || l.Pending() != 1 {
		t.Fatalf("write on a full disk: %v, Err %v, pending %d; want ENOSPC and 1 pending", err, l.Err(), l.Pending())
	}
	if err := l.Flush(); err == nil {
		t.Fatal("Flush on a full disk: nil")
	}
	d.free = 1000
	if err := l.Flush(); err != nil || l.Err() != nil || l.Pending() != 0 {
		t.Fatalf("Flush with space: %v, Err %v, pending %d", err, l.Err(), l.Pending())
	}
	if got := strings.Join(lines(t, d.data.Bytes()), " "); got != "a b" {
		t.Fatalf("file: %s, want a b", got)
	}
}

// A partial line that cannot be truncated away is ended by the next line's
// leading newline: the records after it stay readable.
func TestLogPartialLineNotTruncatable(t *testing.T) {
	one, _ := encode(rec("a"))
	d := &disk{free: len(one) + 5, truncErr: errors.New("EIO")}
	l := New(d)
	_ = l.Write(rec("a"))
	_ = l.Flush()
	_ = l.Write(rec("b"))
	_ = l.Flush()
	d.free = 1000
	if err := l.Write(rec("c")); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(d.data.String(), "\n"), "\n")
	if len(got) != 4 || !strings.Contains(got[2], `"user":"b"`) || !strings.Contains(got[3], `"user":"c"`) {
		t.Fatalf("lines %q: want a, a fragment, b, c", got)
	}
}

func TestLogQueueBounded(t *testing.T) {
	d := &disk{}
	l := New(d)
	l.SetQueue(2)
	_ = l.Write(rec("a"))
	_ = l.Write(rec("b"))
	if err := l.Write(rec("c")); !errors.Is(err, ErrDropped) {
		t.Fatalf("third write with a queue of 2: %v, want ErrDropped", err)
	}
	d.free = 1000
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines(t, d.data.Bytes()), " "); got != "a b" {
		t.Fatalf("file: %s, want a b (c dropped)", got)
	}
}

// After mv + Reopen (SIGHUP) new records go to a new file at the path.
func TestLogReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Write(rec("before")); err != nil || l.Flush() != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(rec("after")); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{path + ".1": "before", path: "after"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(lines(t, b), " "); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
}

// A batch cut short mid-line keeps its whole lines, takes the partial one
// back and writes the rest later, in order.
func TestLogBatchCutShort(t *testing.T) {
	one, _ := encode(rec("u0"))
	d := &disk{free: 2*len(one) + 7}
	l := New(d)
	for _, u := range []string{"u0", "u1", "u2", "u3"} {
		if err := l.Write(rec(u)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(); !errors.Is(err, syscall.ENOSPC) || l.Pending() != 2 {
		t.Fatalf("Flush cut short: %v, %d pending; want ENOSPC and 2", err, l.Pending())
	}
	if got := strings.Join(lines(t, d.data.Bytes()), " "); got != "u0 u1" {
		t.Fatalf("file: %s, want u0 u1", got)
	}
	d.free = 1000
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines(t, d.data.Bytes()), " "); got != "u0 u1 u2 u3" {
		t.Fatalf("file: %s, want u0 u1 u2 u3", got)
	}
}

// Records are written by Flush in batches, not one write(2) each.
func TestLogBatches(t *testing.T) {
	var w countWriter
	l := New(&w)
	for range 100 {
		_ = l.Write(rec("u"))
	}
	if w.calls != 0 {
		t.Fatalf("%d writes before Flush, want 0 (100 records are less than a batch)", w.calls)
	}
	if err := l.Flush(); err != nil || w.calls != 1 {
		t.Fatalf("Flush: %v, %d writes; want 1", err, w.calls)
	}
}

type countWriter struct{ calls int }

func (c *countWriter) Write(p []byte) (int, error) { c.calls++; return len(p), nil }
