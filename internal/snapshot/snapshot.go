// Package snapshot is the JSON form of anvil sessions: the records of
// kickagent who --json (and kick/plan --json), and whole recorded snapshots
// (kickagent snapshot), which plan replays as test fixtures for rules.
package snapshot

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Record is one session; its keys are a stable interface.
type Record struct {
	User        string            `json:"user"`
	Service     string            `json:"service"`
	PID         int64             `json:"pid"`
	IP          string            `json:"ip"`
	ConnGUID    string            `json:"conn_guid"`
	DestIP      string            `json:"dest_ip"`
	Alt         map[string]string `json:"alt"`
	Connections int               `json:"connections"`
}

// RecordOf converts a session.
func RecordOf(s *anvil.Session) Record {
	r := Record{User: s.User, Service: s.Service, PID: s.PID, IP: addr(s.IP),
		ConnGUID: s.ConnGUID, DestIP: addr(s.DestIP), Alt: map[string]string{}, Connections: s.Connections}
	s.AltFields(func(k, v string) { r.Alt[k] = v })
	return r
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// File is a recorded snapshot.
type File struct {
	Dovecot  string    `json:"dovecot"` // "2.3" or "2.4"
	Taken    time.Time `json:"taken"`
	AltNames []string  `json:"alt_fields"`
	Sessions []Record  `json:"sessions"`
}

// Write records snap as indented JSON.
func Write(w io.Writer, snap *anvil.Snapshot) error {
	f := File{Dovecot: snap.Protocol.Dovecot(), Taken: snap.Taken.UTC(), AltNames: snap.AltNames,
		Sessions: make([]Record, len(snap.Sessions))}
	if f.AltNames == nil {
		f.AltNames = []string{}
	}
	for i := range snap.Sessions {
		f.Sessions[i] = RecordOf(&snap.Sessions[i])
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	return enc.Encode(f)
}

// Read loads a recorded snapshot, validating every field as strictly as
// the wire parser does.
func Read(r io.Reader) (*anvil.Snapshot, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	snap := &anvil.Snapshot{Taken: f.Taken, AltNames: f.AltNames}
	switch f.Dovecot {
	case "2.3":
		snap.Protocol = anvil.Proto23
	case "2.4":
		snap.Protocol = anvil.Proto24
	default:
		return nil, fmt.Errorf("snapshot: dovecot %q: want 2.3 or 2.4", f.Dovecot)
	}
	snap.Sessions = make([]anvil.Session, len(f.Sessions))
	for i, rec := range f.Sessions {
		s := anvil.Session{User: rec.User, Service: rec.Service, PID: rec.PID, ConnGUID: rec.ConnGUID, Connections: rec.Connections}
		var err error
		if s.IP, err = parseOpt(rec.IP); err != nil {
			return nil, fmt.Errorf("snapshot: session %d: ip: %w", i+1, err)
		}
		if s.DestIP, err = parseOpt(rec.DestIP); err != nil {
			return nil, fmt.Errorf("snapshot: session %d: dest_ip: %w", i+1, err)
		}
		if s.Service == "" || s.PID <= 0 {
			return nil, fmt.Errorf("snapshot: session %d: service and a positive pid are required", i+1)
		}
		if s.Connections <= 0 {
			s.Connections = 1
		}
		if len(rec.Alt) > 0 {
			// The session carries the columns up to its last recorded
			// one, as on the wire; a column before it that the record
			// lacks (recordings once left empty values out) is empty.
			vals := make([]string, len(f.AltNames))
			n := 0
			for k, v := range rec.Alt {
				j := indexOf(f.AltNames, k)
				if j < 0 {
					return nil, fmt.Errorf("snapshot: session %d: alt field %q is not in alt_fields", i+1, k)
				}
				vals[j] = v
				n = max(n, j+1)
			}
			s.SetAlt(f.AltNames, vals[:n])
		}
		snap.Sessions[i] = s
	}
	return snap, nil
}

func parseOpt(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return anvil.ParseAddr(s)
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
