package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Request kinds, in the order a login sends them.
const (
	kindAllowBefore = "allow-before" // command=allow before the passdb (passdb_user empty)
	kindAllowAfter  = "allow-after"  // command=allow after it
	kindReportOK    = "report-ok"    // command=report, success
	kindReportFail  = "report-fail"  // command=report, wrong password
)

// policyRequest is one prepared request.
type policyRequest struct {
	kind, command string
	body          []byte
}

// weightedNet is a network client addresses are drawn from, with its share.
type weightedNet struct {
	prefix netip.Prefix
	weight float64
}

// parseNets reads "CIDR=weight,CIDR=weight,…" (a CIDR without =weight weighs 1).
func parseNets(s string) ([]weightedNet, error) {
	var out []weightedNet
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		cidr, w, hasW := strings.Cut(part, "=")
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, fmt.Errorf("-nets %q: %w", part, err)
		}
		weight := 1.0
		if hasW {
			if weight, err = strconv.ParseFloat(w, 64); err != nil || weight <= 0 {
				return nil, fmt.Errorf("-nets %q: weight must be a positive number", part)
			}
		}
		out = append(out, weightedNet{p.Masked(), weight})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-nets: no network")
	}
	return out, nil
}

// parseUsers reads "a,b,c" or "@FILE" (one user a line).
func parseUsers(s string) ([]string, error) {
	var raw []string
	if path, ok := strings.CutPrefix(s, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("-users: %w", err)
		}
		raw = strings.Split(string(b), "\n")
	} else {
		raw = strings.Split(s, ",")
	}
	var out []string
	for _, u := range raw {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-users: no user")
	}
	return out, nil
}

// randomIn returns a random address in p (host bits random; .0 and .255 allowed).
func randomIn(r *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for bit := p.Bits(); bit < len(b)*8; bit++ {
		if r.IntN(2) == 1 {
			b[bit/8] |= 0x80 >> (bit % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// mixer makes the requests of simulated logins.
type mixer struct {
	r       *rand.Rand
	users   []string
	nets    []weightedNet
	total   float64
	fail    float64 // share of failed logins
	dovecot int     // 23 or 24: the body's fields
}

func (m *mixer) pickNet() netip.Prefix {
	x := m.r.Float64() * m.total
	for _, n := range m.nets {
		if x < n.weight {
			return n.prefix
		}
		x -= n.weight
	}
	return m.nets[len(m.nets)-1].prefix
}

// login appends the requests one login sends: a good one allow, allow, report (success); a
// failed one allow, report (failure).
func (m *mixer) login(out []policyRequest) []policyRequest {
	user := m.users[m.r.IntN(len(m.users))]
	remote := randomIn(m.r, m.pickNet())
	proto := "imap"
	if m.r.IntN(5) == 0 {
		proto = "pop3"
	}
	var sid [12]byte
	for i := range sid {
		sid[i] = byte(m.r.IntN(256))
	}
	base := map[string]any{"device_id": "", "login": user, "passdb_user": "", "protocol": proto,
		"pwhash": fmt.Sprintf("%04x", m.r.IntN(1<<12)), "remote": remote.String(),
		"session_id": base64.StdEncoding.EncodeToString(sid[:]), "user": user, "tls": false}
	if m.dovecot == 24 {
		base["fail_type"], base["user_alt"] = "", ""
	}
	add := func(kind, command string, set map[string]any) {
		body := make(map[string]any, len(base)+len(set))
		for k, v := range base {
			body[k] = v
		}
		for k, v := range set {
			body[k] = v
		}
		b, _ := json.Marshal(body)
		out = append(out, policyRequest{kind: kind, command: command, body: b})
	}
	add(kindAllowBefore, "allow", nil)
	if m.r.Float64() < m.fail {
		failed := map[string]any{"success": false, "policy_reject": false}
		if m.dovecot == 24 {
			failed["fail_type"] = "credentials"
		}
		add(kindReportFail, "report", failed)
		return out
	}
	after := map[string]any{"passdb_user": user}
	if m.dovecot == 24 {
		after["user_alt"] = user + "-alt"
	}
	add(kindAllowAfter, "allow", after)
	after["success"], after["policy_reject"] = true, false
	add(kindReportOK, "report", after)
	return out
}
