package engine

import (
	"net/netip"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/kickagent/kickagent/internal/match"
)

// TestNetworkLiteralsYAMLRegoAgree: a YAML rule's networks and the Rego
// builtin kickagent.in_networks accept the same literals and select the
// same addresses (issue 11: "::ffff:10.0.0.0/120" was a network for YAML
// and matched nothing in Rego).
func TestNetworkLiteralsYAMLRegoAgree(t *testing.T) {
	literals := []string{"10.0.0.0/8", "::ffff:10.0.0.0/120", "::ffff:10.0.0.5", "127.2", "10/8",
		"127.000.000.002", "[2001:db8::1]", "2001:db8::/32", "fe80::/10", "fe80::1%lo", "fe80::1%nosuch0",
		"0.0.0.0/0", "::/0", "1.2.3.4/33", "host.example"}
	ips := []string{"10.0.0.5", "::ffff:10.0.0.5", "127.0.0.2", "2001:db8::1", "fe80::1%lo", "fe80::1", "192.0.2.1"}
	for _, lit := range literals {
		yn, yerr := parseNetwork(lit)
		rset, rerr := regoCompileNetworks(ast.String(lit))
		if (yerr == nil) != (rerr == nil) {
			t.Errorf("%q: YAML error %v, Rego error %v", lit, yerr, rerr)
			continue
		}
		if yerr != nil {
			continue
		}
		yset := match.NewNetworkSet([]match.Network{yn})
		for _, s := range ips {
			ip := netip.MustParseAddr(s)
			if y, r := yset.Contains(ip), rset.Contains(ip); y != r {
				t.Errorf("%s in %q: YAML %v, Rego %v", s, lit, y, r)
			}
		}
	}
}
