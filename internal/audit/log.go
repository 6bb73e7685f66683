package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// DefaultQueue is how many records a Log keeps in memory while its file
// cannot be written (about 5 MB of lines).
const DefaultQueue = 10000

// ErrDropped is wrapped by Write's error when the queue of unwritten
// records was full and the record was dropped.
var ErrDropped = errors.New("audit: queue full, record dropped")

// batchBytes bounds one write(2): records are queued and written in
// batches of whole lines when Flush is called or this much is queued.
const batchBytes = 64 << 10

// Log appends records as JSON lines. Safe for concurrent use.
//
// Records are encoded in memory and written in batches of whole lines, one
// write(2) each (the file is opened O_APPEND), by Flush, Sync, or when
// 64 KiB are queued: the agent flushes the intent to kick (and syncs it)
// before the kick, the outcomes right after it, and the rest at the end of
// each cycle. A batch that cannot be written (disk full, I/O error) stays
// queued, bounded and in order, and is tried again by the next flush: the
// trail recovers by itself when the error clears. A write cut short (the
// disk filled mid-batch) keeps the whole lines it wrote and truncates the
// partial one back, so the file holds no partial line; when even that
// fails, the next line written starts with a newline, so the fragment
// stands on a line of its own instead of spoiling the next record.
type Log struct {
	mu      sync.Mutex
	w       io.Writer
	path    string   // the file Reopen opens again; "" for New's writers
	pending [][]byte // encoded lines not in the file yet, oldest first
	size    int      // bytes in pending
	max     int      // most lines pending
	err     error    // the last write error; nil once the queue is written
	broken  bool     // the file ends with a partial line that could not be removed
	buf     []byte   // a batch
}

// New writes to w (Close closes it when it is an io.Closer).
func New(w io.Writer) *Log { return &Log{w: w, max: DefaultQueue} }

// Open appends to the file at path, creating it (mode 0640) if needed.
func Open(path string) (*Log, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	return &Log{w: f, path: path, max: DefaultQueue}, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	return f, nil
}

// SetQueue sets how many unwritten records are kept (at least 1).
func (l *Log) SetQueue(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max = max(n, 1)
}

// Write queues one record; Flush writes it. An error is a failed write of
// the queue (its records stay queued), or wraps ErrDropped when the queue
// was full and this record is lost.
func (l *Log) Write(r *Record) error {
	if l == nil {
		return nil
	}
	line, err := encode(r)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) >= l.max {
		// The oldest records stay: the trail keeps a gap at its end,
		// counted, rather than a hole in the middle.
		err := l.drain()
		if len(l.pending) >= l.max {
			return fmt.Errorf("%w (%d waiting; last write error: %w)", ErrDropped, len(l.pending), err)
		}
	}
	l.pending = append(l.pending, line)
	l.size += len(line)
	if l.size >= batchBytes {
		return l.drain()
	}
	return nil
}

func encode(r *Record) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil { // Encode ends the line with \n
		return nil, fmt.Errorf("audit: encode: %w", err)
	}
	return b.Bytes(), nil
}

// Flush writes the queued records; nil means none is left.
func (l *Log) Flush() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.drain()
}

// Err returns the error that keeps records queued, or nil.
func (l *Log) Err() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Pending returns how many records wait to be written.
func (l *Log) Pending() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// drain writes the queue in batches of whole lines.
func (l *Log) drain() error {
	for len(l.pending) > 0 {
		b := l.buf[:0]
		if l.broken {
			b = append(b, '\n')
		}
		lead := len(b)
		k := 0
		for k < len(l.pending) && (k == 0 || len(b)+len(l.pending[k]) <= batchBytes) {
			b = append(b, l.pending[k]...)
			k++
		}
		l.buf = b
		n, err := l.w.Write(b)
		if err == nil && n < len(b) {
			err = io.ErrShortWrite
		}
		if n > 0 {
			l.broken = l.broken && n < lead
		}
		// The whole lines written are done; a partial one is taken back.
		rest, done := max(n-lead, 0), 0
		for done < k && rest >= len(l.pending[done]) {
			rest -= len(l.pending[done])
			done++
		}
		l.dequeue(done)
		if rest > 0 && !unwrite(l.w, rest) {
			l.broken = true
		}
		if err != nil {
			l.err = fmt.Errorf("audit: write: %w", err)
			return l.err
		}
	}
	l.pending, l.size, l.err = nil, 0, nil
	return nil
}

func (l *Log) dequeue(k int) {
	for i := range k {
		l.size -= len(l.pending[i])
		l.pending[i] = nil
	}
	l.pending = l.pending[k:]
}

// unwrite removes the last n bytes written to an O_APPEND file.
func unwrite(w io.Writer, n int) bool {
	f, ok := w.(interface {
		io.Seeker
		Truncate(int64) error
	})
	if !ok {
		return false
	}
	end, err := f.Seek(0, io.SeekCurrent)
	if err != nil || end < int64(n) {
		return false
	}
	return f.Truncate(end-int64(n)) == nil
}

// Sync writes the queued records and commits the file to stable storage
// (fsync), when it is a file.
func (l *Log) Sync() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.drain(); err != nil {
		return err
	}
	f, ok := l.w.(interface{ Sync() error })
	if !ok {
		return nil
	}
	// A pipe or terminal (-) cannot be synced: EINVAL, not a failure.
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("audit: sync: %w", err)
	}
	return nil
}

// Reopen opens the log's path again and writes there from now on, queued
// records included: after logrotate moved the file away, the trail goes
// on in a new file at the configured path. On error the old file stays
// in use. Logs made with New are not reopened.
func (l *Log) Reopen() error {
	if l == nil || l.path == "" {
		return nil
	}
	f, err := openFile(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.w
	l.w, l.broken = f, false
	if c, ok := old.(io.Closer); ok {
		_ = c.Close() // its lines were written by write(2): nothing is lost
	}
	// Records queued before the signal go to the new file, in order.
	return l.drain()
}

// Close writes what it can of the queue and closes the file.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.drain()
	if c, ok := l.w.(io.Closer); ok {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
