package jobs

import (
	"fmt"
	"strings"

	"github.com/kickagent/kickagent/internal/match"
)

// Everyone reports whether the block selects every session: a network
// with no prefix bits (0.0.0.0/0, ::/0, on any interface), or a user mask made only of '*'
// and '?' with at least one '*' ("*", "?*": every non-empty name, and
// anvil has no empty ones). Such a block kicks the whole server for as
// long as it lasts, so the block command wants --force for it. A mask of
// '?' alone ("???") selects names of one length, not everyone.
func (j Job) Everyone() bool {
	if j.Kind != Block {
		return false
	}
	for _, s := range j.Rule.Networks {
		// A zone narrows it to one interface, which is still everyone there.
		if n, err := match.ParseNetwork(s); err == nil && n.Bits() == 0 {
			return true
		}
	}
	for _, u := range j.Rule.Users {
		if strings.Trim(u, "*?") == "" && strings.Contains(u, "*") {
			return true
		}
	}
	return false
}

// ReadAs says how the block's target was read, for the command's output:
// "network 192.0.2.0/24" or "user mask example.com".
func (j Job) ReadAs() string {
	if len(j.Rule.Networks) > 0 {
		return "network " + j.Rule.Networks[0]
	}
	return "user mask " + j.Target
}

// LooksLikeHost reports whether a user-mask target looks like a host
// name ("example.com", "mail.example.com"): letters, digits, '-' and dots,
// with a dot, no '@' and no wildcard. The block command warns that it
// blocks a user of that name, since host names are never resolved.
func (j Job) LooksLikeHost() bool {
	if j.Kind != Block || len(j.Rule.Users) != 1 {
		return false
	}
	u := j.Rule.Users[0]
	if !strings.Contains(u, ".") || strings.HasPrefix(u, ".") || strings.HasSuffix(u, ".") {
		return false
	}
	letter := false
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			letter = true
		case '0' <= c && c <= '9', c == '-', c == '.':
		default:
			return false
		}
	}
	return letter
}

// HostWarning is the warning LooksLikeHost asks for.
func (j Job) HostWarning() string {
	return fmt.Sprintf("%q is read as a user mask, not a host: it blocks users named %s (ASCII case ignored); host names are never resolved, give the client's IP network instead",
		j.Target, j.Target)
}
