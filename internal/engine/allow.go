package engine

import (
	"net/netip"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Allow is the global allow list: sessions it matches are never kicked, by
// any rule or policy.
type Allow struct {
	// Users are user masks (doveadm semantics).
	Users []string
	// Networks are client networks.
	Networks []netip.Prefix

	users userSet
	nets  prefixSet
}

// compile builds the lookup structures; call once after filling the lists.
func (a *Allow) compile() {
	a.users = newUserSet(a.Users)
	a.nets = newPrefixSet(a.Networks)
}

// Protects reports whether the allow list covers s.
func (a *Allow) Protects(s *anvil.Session) bool {
	if a == nil {
		return false
	}
	if a.users.match(s.User) {
		return true
	}
	return s.IP.IsValid() && a.nets.contains(s.IP)
}
