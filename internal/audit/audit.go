// Package audit writes the agent's audit trail: one JSON line per decision
// acted on (kicked, dry-run, held back, blocked by the circuit breaker,
// allowed), so that "why was this user disconnected?" has an answer.
package audit

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/kickagent/kickagent/internal/snapshot"
)

// Result values of a Record.
const (
	Kicked            = "kicked"
	StillConnected    = "still-connected"
	RefusedCollateral = "refused-collateral"
	Failed            = "failed"
	DryRun            = "dry-run"
	HeldBack          = "held-back"
	Breaker           = "breaker"
	Allowed           = "allowed"
	// Skipped: a rule selected a session that is never kicked (an lmtp
	// delivery in progress).
	Skipped = "skipped"
)

// Record is one audit line.
type Record struct {
	Time    time.Time `json:"time"`
	Result  string    `json:"result"`
	Rule    string    `json:"rule"`
	Engine  string    `json:"engine"`
	Reason  string    `json:"reason"`
	Rev     string    `json:"rules_rev"`
	Dovecot string    `json:"dovecot"`
	snapshot.Record
	Method string `json:"method,omitempty"`
	Error  string `json:"error,omitempty"`
	// Repeat counts the kicks of this user in the last hour, this one
	// included (kicked records only).
	Repeat int `json:"repeat,omitempty"`
}

// Log appends records as JSON lines. Safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	w   *bufio.Writer
	c   io.Closer
	enc *json.Encoder
}

// New writes to w; Close closes it when it is an io.Closer.
func New(w io.Writer) *Log {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	l := &Log{w: bw, enc: enc}
	if c, ok := w.(io.Closer); ok {
		l.c = c
	}
	return l
}

// Write appends one record; records are flushed by Flush, which the agent
// calls at the end of every cycle.
func (l *Log) Write(r *Record) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.enc.Encode(r)
}

// Flush writes buffered records out.
func (l *Log) Flush() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}

// Close flushes and closes.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	err := l.Flush()
	if l.c != nil {
		if cerr := l.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
