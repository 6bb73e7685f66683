package main

import (
	"encoding/json"
	"io"
	"net/netip"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
	"github.com/kickagent/kickagent/internal/snapshot"
)

// matching returns the sessions the filter selects, in anvil's order (as
// doveadm prints them): sorting 100,000 rows would cost more than reading
// them.
func matching(snap *anvil.Snapshot, f *match.Filter) []*anvil.Session {
	out := make([]*anvil.Session, 0, len(snap.Sessions))
	for i := range snap.Sessions {
		if s := &snap.Sessions[i]; f.Match(s) {
			out = append(out, s)
		}
	}
	return out
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func writeWhoJSON(w io.Writer, snap *anvil.Snapshot, f *match.Filter) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, s := range matching(snap, f) {
		if err := enc.Encode(snapshot.RecordOf(s)); err != nil {
			return err
		}
	}
	return nil
}
