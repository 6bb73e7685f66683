package integration

import (
	"net"
	"strings"

	"github.com/kickagent/kickagent/internal/match"
)

// knownDiff is a class of queries where kickagent deliberately differs from
// doveadm. A mismatch counts as documented only when the query is in the
// class (applies) and kickagent did what the class says it does
// (documented); any other mismatch fails the test.
type knownDiff struct {
	name       string
	reason     string
	applies    func(c *diffCheck) bool
	documented func(c *diffCheck) bool
}

// knownDiffs is the table of documented differences; add a row to document
// another one.
var knownDiffs = []knownDiff{
	{
		name:   "old-ipv4",
		reason: "IPv4 text other than four decimal parts (127.2, 0x7f.0.0.2, 0177.0.0.1, 10/8): kickagent refuses it (64), doveadm reads it by inet_aton rules",
		applies: func(c *diffCheck) bool {
			return c.anyNet(func(d dvArg) bool { return d.oldIPv4 })
		},
		documented: kickagentUsage,
	},
	{
		name:   "mapped-network",
		reason: "an IPv4-mapped IPv6 network (::ffff:127.0.0.0/104): kickagent refuses it (64); doveadm matches no session with it (mapped client addresses are compared as IPv4)",
		applies: func(c *diffCheck) bool {
			return c.anyNet(func(d dvArg) bool { return d.addr.Is4In6() })
		},
		documented: kickagentUsage,
	},
	{
		name:   "several-masks",
		reason: "several user masks: doveadm 2.3 and 2.4.1 refuse them (64); kickagent ORs them like doveadm 2.4.2+ (checked against the union of doveadm's answers per mask)",
		applies: func(c *diffCheck) bool {
			return len(c.masks) >= 2 && c.dv.kind == kindUsage
		},
		documented: func(c *diffCheck) bool { return same(c.ka, c.union()) },
	},
	{
		name:   "zone-network-2.3",
		reason: "a zoned IPv6 network (fe80::1%lo) on 2.3: doveadm 2.3 (inet_pton) reads it as a user mask, kickagent as a network (so a second network, or a kick's only /0 selector, is refused)",
		applies: func(c *diffCheck) bool {
			if c.v24 {
				return false
			}
			for _, a := range c.q.args {
				if d := parseDvArg(a, true); d.network && d.zone != "" {
					return true
				}
			}
			return false
		},
		// Read as a network it may also be a second network, or a kick's
		// only (/0) selector: both refused.
		documented: func(c *diffCheck) bool { return c.ka.kind == kindOK || c.ka.kind == kindUsage },
	},
	{
		name:   "zone-no-interface",
		reason: "an IPv6 network whose zone names no interface (fe80::1%nosuch0): doveadm 2.4 reads it as a user mask, kickagent refuses it (64)",
		applies: func(c *diffCheck) bool {
			if !c.v24 {
				return false
			}
			for _, a := range c.q.args {
				host, _, _ := strings.Cut(a, "/")
				if ip, zone, ok := strings.Cut(host, "%"); ok && strings.Contains(ip, ":") && !isAllDigits(zone) {
					if _, err := net.InterfaceByName(zone); err != nil {
						return true
					}
				}
			}
			return false
		},
		documented: kickagentUsage,
	},
	{
		name:   "address-like-mask",
		reason: "text that looks like an address but is none (1.2.3.4/33, 1.2.3.4/, 1.2.3.999, '1234 '): doveadm reads it as a user mask (or, 2.3, '1234 ' by inet_aton as 0.0.4.210), kickagent refuses it (64): OR-ed with the other masks it would widen the selection",
		applies: func(c *diffCheck) bool {
			for _, a := range c.q.args {
				if _, _, err := match.ClassifyArg(a); err != nil && !parseDvArg(a, c.v24).oldIPv4 {
					return true
				}
			}
			return false
		},
		documented: kickagentUsage,
	},
	{
		name:   "several-masks-doveadm-crashed",
		reason: "several user masks on 2.4.1, where doveadm crashes answering one of them alone (the -f NULL defect), so there is no union to compare with",
		applies: func(c *diffCheck) bool {
			return len(c.masks) >= 2 && c.dv.kind == kindUsage && c.union().kind == kindCrash
		},
		documented: func(c *diffCheck) bool { return true },
	},
	{
		name:   "kick-slash0-only",
		reason: "kick whose only selector is a /0 network (selects everyone): kickagent refuses it (64) and asks for '*'; doveadm kick 2.4.1 crashes on it (NULL username in strpbrk)",
		applies: func(c *diffCheck) bool {
			if c.side != "kick" || c.q.dest != "" || len(c.masks) > 0 || len(c.nets) == 0 {
				return false
			}
			for _, n := range c.nets {
				if n.bits != 0 {
					return false
				}
			}
			return true
		},
		documented: kickagentUsage,
	},
}

func kickagentUsage(c *diffCheck) bool { return c.ka.kind == kindUsage }

// classify returns the documented class of a mismatch, or "".
func classify(c *diffCheck) string {
	for _, k := range knownDiffs {
		if k.applies(c) && k.documented(c) {
			return k.name
		}
	}
	return ""
}
