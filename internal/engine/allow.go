package engine

import (
	"github.com/kickagent/kickagent/internal/match"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Allow is the global allow list: sessions it matches are never kicked, by
// any rule or policy.
type Allow struct {
	// Users are user masks (doveadm semantics).
	Users []string
	// Networks are client networks.
	Networks []match.Network

	users match.MaskSet
	nets  match.NetworkSet
}

// compile builds the lookup structures; call once after filling the lists.
func (a *Allow) compile() {
	a.users = match.NewMaskSet(a.Users)
	a.nets = match.NewNetworkSet(a.Networks)
}

// Protects reports whether the allow list covers s.
func (a *Allow) Protects(s *anvil.Session) bool {
	if a == nil {
		return false
	}
	if a.users.Match(s.User) {
		return true
	}
	return s.IP.IsValid() && a.nets.Contains(s.IP)
}
