package integration

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// query is one who/kick selection: [-f field] [-h dest] args...
type query struct {
	kind  string // generator class, for the summary and for replays
	field string
	dest  string // -h: compared through kick only (doveadm who has no -h)
	args  []string
}

func (q query) String() string {
	var parts []string
	if q.field != "" {
		parts = append(parts, "-f", shellQuote(q.field))
	}
	if q.dest != "" {
		parts = append(parts, "-h", shellQuote(q.dest))
	}
	for _, a := range q.args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:/_-%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// queryGen draws random queries from what a population holds.
type queryGen struct {
	r       *rand.Rand
	v24     bool
	proxy   bool     // -h queries
	names   []string // usernames in the population
	altVals []string // alt-field values in the population
	fields  []string // -f fields to use (doveadm must not crash on them)
	ips     []string // client IPs in the population, as doveadm prints them
	dests   []string // dest IPs in the population
	altBias bool     // half the queries use -f (the crash phase)
}

// specialNets are network arguments with a story (see the documented
// differences and anvil-protocol.md §1.3).
var specialNets = []string{
	"127.0.0.0/8", "127.0.0.2", "127.0.0.0/30", "0.0.0.0/0", "::/0", "::1", "::1/128", "::/127",
	"fe80::/10", "fe80::1%lo", "fe80::2%1", "fe80::1%nosuch0", "fe80::1", "fe80::2/128",
	"[2001:db8::1]", "[2001:db8::a]/64", "2001:DB8::A", "2001:db8::/32", "2001:db8::/120",
	"::ffff:127.0.0.0/104", "::ffff:127.0.0.9", "::ffff:127.0.0.9/128",
	"127.000.000.002", "127.2", "0x7f.0.0.2", "10/8", "0177.0.0.1", "127.1/8", "0x7f000002",
	"127.0.0.1/33", "::1/129", "1.2.3.4/", "127.0.0.1/-1", "10.1.2.3/10", "192.0.2.0/24",
}

var v4Bits = []int{0, 1, 7, 8, 10, 16, 24, 30, 31, 32}
var v6Bits = []int{0, 10, 16, 32, 64, 96, 104, 120, 127, 128}

func (g *queryGen) pick(list []string) string { return list[g.r.IntN(len(list))] }

// network returns a network argument, usually built from a population IP.
func (g *queryGen) network() string {
	if g.r.IntN(3) == 0 || len(g.ips) == 0 {
		return g.pick(specialNets)
	}
	ip := g.pick(g.ips)
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	switch g.r.IntN(6) {
	case 0:
		return ip
	case 1:
		if a.Is6() {
			return strings.ToUpper(ip)
		}
	case 2:
		if a.Is6() && a.Zone() == "" {
			return "[" + ip + "]"
		}
	}
	bits := v4Bits
	if a.Is6() {
		bits = v6Bits
	}
	b := bits[g.r.IntN(len(bits))]
	p, err := a.WithZone("").Prefix(b)
	if err != nil {
		return ip
	}
	if g.r.IntN(2) == 0 {
		return ip + "/" + strconv.Itoa(b) // host bits set, as users write it
	}
	return p.String()
}

// mask returns a user mask built from a population name (or alt value).
func (g *queryGen) maskFrom(names []string) string { return noDash(g.rawMask(names)) }

func (g *queryGen) rawMask(names []string) string {
	if len(names) == 0 || g.r.IntN(12) == 0 {
		return g.pick([]string{"*", "?", "??*", "nobody", "zz*", "*@*", "**", "*?", "a*", "*e", "j*", "J?N?", "*-alt", "*_*", " *", "* *"})
	}
	s := g.pick(names)
	rs := []rune(s)
	switch g.r.IntN(11) {
	case 0:
		return s
	case 1: // flip the case of some letters
		for i, c := range rs {
			if g.r.IntN(2) == 0 {
				rs[i] = flipCase(c)
			}
		}
		return string(rs)
	case 2:
		return strings.ToUpper(s) // also non-ASCII: doveadm folds ASCII only
	case 3: // '?' for one or two characters
		for range 1 + g.r.IntN(2) {
			if len(rs) > 0 {
				rs[g.r.IntN(len(rs))] = '?'
			}
		}
		return string(rs)
	case 4:
		return string(rs[:g.r.IntN(len(rs)+1)]) + "*"
	case 5:
		return "*" + string(rs[g.r.IntN(len(rs)+1):])
	case 6:
		if len(rs) < 2 {
			return "*" + s + "*"
		}
		i := g.r.IntN(len(rs) - 1)
		return "*" + string(rs[i:i+1+g.r.IntN(len(rs)-i)]) + "*"
	case 7:
		return strings.Repeat("?", utf8.RuneCountInString(s)) // one '?' per character, not per byte
	case 8:
		return s + g.pick([]string{"x", "?", "*?", " "})
	case 9:
		if len(rs) > 2 {
			return string(rs[:1]) + "*" + string(rs[len(rs)-1:])
		}
		return s + "*"
	}
	return "x" + s
}

func flipCase(c rune) rune {
	switch {
	case c >= 'a' && c <= 'z':
		return c - 32
	case c >= 'A' && c <= 'Z':
		return c + 32
	}
	return c
}

func (g *queryGen) mask() string { return g.maskFrom(g.names) }

// noDash keeps an argument from reading as an option: doveadm's getopt
// would take "-alt" for -a lt (kickagent gets "--" first).
func noDash(s string) string {
	if strings.HasPrefix(s, "-") {
		return "*" + s
	}
	return s
}

// next draws one query. kinds are weighted; 2.4 adds -f, the proxy -h.
func (g *queryGen) next() query {
	for {
		if q, ok := g.draw(); ok {
			return q
		}
	}
}

func (g *queryGen) draw() (query, bool) {
	n := g.r.IntN(100)
	if g.altBias && g.r.IntN(2) == 0 {
		n = 71 + g.r.IntN(13) // "alt"
	}
	switch {
	case n < 20:
		return query{kind: "mask", args: []string{g.mask()}}, true
	case n < 38:
		return query{kind: "net", args: []string{g.network()}}, true
	case n < 52:
		args := []string{g.mask(), g.network()}
		if g.r.IntN(3) == 0 {
			args[0], args[1] = args[1], args[0]
		}
		return query{kind: "mask+net", args: args}, true
	case n < 57:
		args := []string{g.mask(), g.mask()}
		if g.r.IntN(3) == 0 {
			args = append(args, g.mask())
		}
		if g.r.IntN(3) == 0 {
			args = append(args, g.network())
		}
		g.r.Shuffle(len(args), func(i, j int) { args[i], args[j] = args[j], args[i] })
		return query{kind: "masks", args: args}, true
	case n < 60:
		first := g.network()
		for parseDvArg(first, g.v24).bits == 0 {
			first = g.network()
		}
		return query{kind: "nets", args: []string{first, g.network()}}, true
	case n < 64:
		args := []string{g.pick([]string{"0.0.0.0/0", "::/0", "127.0.0.1/0", "fe80::1/0"}), g.network()}
		if g.r.IntN(2) == 0 {
			args = append(args, g.mask())
		}
		return query{kind: "slash0+net", args: args}, true
	case n < 67:
		args := []string{""}
		switch g.r.IntN(3) {
		case 1:
			args = append(args, g.network())
		case 2:
			args = append(args, g.mask())
		}
		return query{kind: "empty", args: args}, true
	case n < 70:
		return query{kind: "digits", args: []string{g.pick([]string{"0", "127", "12345", "4194305", "00"})}}, true
	case n < 71:
		return query{kind: "none"}, true
	case n < 84:
		if !g.v24 || len(g.fields) == 0 {
			return query{}, false
		}
		f := g.pick(g.fields)
		args := []string{g.maskFrom(append(g.altVals, g.names...))}
		if g.r.IntN(4) == 0 {
			args = append(args, g.maskFrom(g.altVals))
		}
		if g.r.IntN(3) == 0 {
			args = append(args, g.network())
		}
		return query{kind: "alt", field: f, args: args}, true
	case n < 87:
		if !g.v24 || len(g.fields) == 0 {
			return query{}, false
		}
		q := query{kind: "alt-nomask", field: g.pick(g.fields)}
		if g.r.IntN(2) == 0 {
			q.kind, q.args = "alt-netonly", []string{g.network()}
		}
		return q, true
	default:
		if !g.proxy {
			return query{}, false
		}
		q := query{kind: "dest", dest: g.pick(append([]string{"::ffff:127.0.0.1", "::1", "[::1]", "127.0.0.2", "fe80::1%lo"}, g.dests...))}
		switch g.r.IntN(4) {
		case 1:
			q.args = []string{g.mask()}
		case 2:
			q.args = []string{g.network()}
		case 3:
			if len(g.fields) > 0 {
				q.field = g.pick(g.fields)
				q.args = []string{g.maskFrom(g.altVals)}
			}
		}
		return q, true
	}
}
