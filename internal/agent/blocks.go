package agent

import (
	"net/netip"

	"github.com/kickagent/kickagent/internal/engine"
)

// userBlocks is a Blocks that also blocks users by name (CrowdSec's
// username decisions).
type userBlocks interface {
	// BlockedUser reports the block of a user; nil when none is held.
	BlockedUser() func(user string) (engine.Block, bool)
}

// JoinBlocks is the blocks of every non-nil b: an IP or user is blocked
// when one of them blocks it, the first one's block named.
func JoinBlocks(bs ...Blocks) Blocks {
	var j joined
	for _, b := range bs {
		if b != nil {
			j = append(j, b)
		}
	}
	switch len(j) {
	case 0:
		return nil
	case 1:
		return j[0]
	}
	return j
}

type joined []Blocks

func (j joined) Blocked() func(ip netip.Addr) (engine.Block, bool) {
	var fs []func(netip.Addr) (engine.Block, bool)
	for _, b := range j {
		if f := b.Blocked(); f != nil {
			fs = append(fs, f)
		}
	}
	return first(fs)
}

func (j joined) BlockedUser() func(user string) (engine.Block, bool) {
	var fs []func(string) (engine.Block, bool)
	for _, b := range j {
		if ub, ok := b.(userBlocks); ok {
			if f := ub.BlockedUser(); f != nil {
				fs = append(fs, f)
			}
		}
	}
	return first(fs)
}

func (j joined) Expire() {
	for _, b := range j {
		b.Expire()
	}
}

// first is the lookup that asks each of fs in turn; nil when fs is empty.
func first[K any](fs []func(K) (engine.Block, bool)) func(K) (engine.Block, bool) {
	switch len(fs) {
	case 0:
		return nil
	case 1:
		return fs[0]
	}
	return func(k K) (engine.Block, bool) {
		for _, f := range fs {
			if b, ok := f(k); ok {
				return b, true
			}
		}
		return engine.Block{}, false
	}
}

// blockedUser is b's user lookup, nil when b blocks no user.
func blockedUser(b Blocks) func(string) (engine.Block, bool) {
	if ub, ok := b.(userBlocks); ok {
		return ub.BlockedUser()
	}
	return nil
}
