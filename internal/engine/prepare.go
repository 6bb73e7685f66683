package engine

import "github.com/kickagent/kickagent/internal/anvil"

// Prepared is per-session work of an evaluation that needs nothing but the
// session, done while the dump is still arriving (anvil.Conn.DumpEach):
// there it fills time the reader spends waiting for anvil, instead of
// adding to the cycle after the dump. Today that is the YAML match cache's
// key hash of each session (yaml_cache.go), ~0.1 µs; its second hash is
// made in the evaluation, for the sessions that match a rule only.
//
// Add must see sessions 0, 1, … n-1 of the snapshot in order; a restart at
// 0 (a dump retried on a new connection) starts over. Evaluate uses a
// Prepared only when it was made by the same Ruleset and holds exactly the
// snapshot's sessions; otherwise the work is done in the evaluation.
type Prepared struct {
	rs    *Ruleset
	order anvil.InOrder
	keys  []uint64 // the sessions' keys in the YAML match cache
}

// Prepare returns p reset for rs (p nil: a new one), keeping its memory.
func (rs *Ruleset) Prepare(p *Prepared) *Prepared {
	if p == nil {
		p = &Prepared{}
	}
	p.rs, p.order, p.keys = rs, anvil.InOrder{}, p.keys[:0]
	return p
}

// Add does session i's work.
func (p *Prepared) Add(i int, s *anvil.Session) {
	if !p.order.Next(i) {
		return
	}
	if i == 0 {
		p.keys = p.keys[:0]
	}
	if len(p.rs.rules) > 0 {
		p.keys = append(p.keys, s.ContentHash(p.rs.cache.seed))
	}
}

// yamlKeys returns the cache keys of in's sessions, nil if in has no
// Prepared for rs and its snapshot.
func (rs *Ruleset) yamlKeys(in *Input) []uint64 {
	p := in.Prepared
	n := len(in.Snapshot.Sessions)
	if p == nil || p.rs != rs || !p.order.Whole(n) || len(p.keys) != n {
		return nil
	}
	return p.keys
}
