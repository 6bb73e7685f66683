// Command cycle benchmarks agent cycles against a real anvil (a rig instance of
// test/dovecot/instance.sh holding synthetic sessions) and generates the rule files that
// bench/run.sh uses. It runs the agent's own cycle (agent.Step: dump, evaluate, dry-run
// reports; nothing is kicked) in this process, so it can time cycle after cycle of one agent:
// the steady state that a single `kickagent run --once` cannot show.
//
//	cycle gen -kind mix -rules 1000 -o rules.yaml          # rules for SyntheticMix(n, seed)
//	cycle gen -kind kick50 -o kick50.yaml -doveadm args.txt # 50 mask/network rules + doveadm args
//	cycle yaml -inst b24 -rounds 9 A.yaml B.yaml ...         # raw read and one cycle per file, interleaved
//	cycle rego -inst b24 -policy policy -cold 5 -steady 9 -churn 1000
//
// yaml and rego print markdown table rows: label, runs, min, median, p90 (seconds), median
// dump and evaluation parts, and the median over the raw dump read of the same rounds.
// CYCLE_CPUPROFILE=FILE writes a CPU profile of the whole run, CYCLE_MEMPROFILE=FILE an
// allocation profile at its end; CYCLE_STEADY_CPUPROFILE=FILE (rego, instead of
// CYCLE_CPUPROFILE) one of the steady cycles only (with the registering of their new sessions).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kickagent/kickagent/internal/agent"
	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/kick"
	"github.com/kickagent/kickagent/internal/testrig"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: cycle gen|yaml|rego [flags]")
		os.Exit(64)
	}
	var err error
	if p := os.Getenv("CYCLE_CPUPROFILE"); p != "" {
		f, perr := os.Create(p)
		if perr == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "yaml":
		err = yamlCmd(os.Args[2:])
	case "rego":
		err = regoCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if p := os.Getenv("CYCLE_MEMPROFILE"); p != "" {
		if f, perr := os.Create(p); perr == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "cycle:", err)
		os.Exit(1)
	}
}

// timedSource times the dumps of the agent's cycle.
type timedSource struct {
	src  *agent.AnvilSource
	last time.Duration
	n    int
}

func (t *timedSource) Dump(ctx context.Context, each func(int, *anvil.Session)) (*anvil.Snapshot, error) {
	start := time.Now()
	s, err := t.src.Dump(ctx, each)
	t.last = time.Since(start)
	if s != nil {
		t.n = len(s.Sessions)
	}
	return s, err
}

// noKicker fails every kick: the benchmark agents run dry.
type noKicker struct{}

func (noKicker) Kick(context.Context, *anvil.Snapshot, func(*anvil.Session) bool) ([]kick.Result, error) {
	return nil, errors.New("bench: no kicks")
}

type benchAgent struct {
	a   *agent.Agent
	src *timedSource
}

func newAgent(socket string, rs *engine.Ruleset) *benchAgent {
	src := &timedSource{src: &agent.AnvilSource{Client: &anvil.Client{Path: socket}}}
	a := agent.New(agent.Settings{Interval: time.Minute, DryRun: true, BreakerFraction: 1},
		agent.Deps{Source: src, Kicker: noKicker{}, Metrics: agent.NewMetrics(prometheus.NewRegistry()),
			Load: func(context.Context) (*engine.Ruleset, error) { return rs, nil }, Logger: slog.New(slog.DiscardHandler)})
	return &benchAgent{a: a, src: src}
}

// step runs one cycle; it returns the cycle's and the dump's durations.
func (b *benchAgent) step(ctx context.Context) (time.Duration, time.Duration, error) {
	start := time.Now()
	err := b.a.Step(ctx)
	return time.Since(start), b.src.last, err
}

func (b *benchAgent) close() { b.src.src.Close() }

type series struct {
	label             string
	total, dump, eval []float64
	sessions          int
}

func (s *series) add(total, dump time.Duration) {
	s.total = append(s.total, total.Seconds())
	s.dump = append(s.dump, dump.Seconds())
	s.eval = append(s.eval, (total - dump).Seconds())
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if q == 0.5 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

func (s *series) row(raw float64) string {
	md := quantile(s.total, 0.5)
	r := "–"
	if raw > 0 {
		r = fmt.Sprintf("%.2f", md/raw)
	}
	return fmt.Sprintf("| %s | %d | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %s |", s.label, s.sessions, len(s.total),
		slices.Min(s.total), md, quantile(s.total, 0.9), quantile(s.dump, 0.5), quantile(s.eval, 0.5), r)
}

const header = "| What | sessions | runs | min (s) | median (s) | p90 (s) | median dump (s) | median evaluate+rest (s) | median / raw read median |\n|---|---|---|---|---|---|---|---|---|"

// rawRead is the floor: handshake, CONNECT-DUMP and the reply read without parsing.
func rawRead(ctx context.Context, socket string) (time.Duration, error) {
	start := time.Now()
	_, err := rawDump(ctx, socket)
	return time.Since(start), err
}

func yamlCmd(args []string) error {
	fs := flag.NewFlagSet("yaml", flag.ExitOnError)
	inst := fs.String("inst", "b24", "rig instance")
	rounds := fs.Int("rounds", 9, "rounds")
	label := fs.String("label", "", "label prefix")
	noRaw := fs.Bool("noheader", false, "omit the table header")
	fs.Parse(args)
	in, err := testrig.Load(*inst)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var agents []*benchAgent
	var ss []*series
	for _, f := range fs.Args() {
		rs, err := engine.Load(ctx, engine.Sources{Rules: []string{f}})
		if err != nil {
			return err
		}
		agents = append(agents, newAgent(in.Anvil, rs))
		ss = append(ss, &series{label: fmt.Sprintf("%scycle, %d YAML rules (%s)", *label, rs.RuleCount(), filepath.Base(f))})
	}
	raw := &series{label: *label + "raw dump read"}
	for r := 0; r < *rounds; r++ {
		for j := 0; j <= len(agents); j++ {
			k := (r + j) % (len(agents) + 1)
			if k == len(agents) {
				d, err := rawRead(ctx, in.Anvil)
				if err != nil {
					return err
				}
				raw.add(d, d)
				continue
			}
			t, d, err := agents[k].step(ctx)
			if err != nil {
				return err
			}
			ss[k].add(t, d)
			ss[k].sessions = agents[k].src.n
		}
	}
	raw.sessions = ss[0].sessions
	if !*noRaw {
		fmt.Println(header)
	}
	rm := quantile(raw.total, 0.5)
	fmt.Println(raw.row(rm))
	for _, s := range ss {
		fmt.Println(s.row(rm))
	}
	return nil
}

func regoCmd(args []string) error {
	fs := flag.NewFlagSet("rego", flag.ExitOnError)
	inst := fs.String("inst", "b24", "rig instance")
	policy := fs.String("policy", "policy", "policy directory")
	cold := fs.Int("cold", 5, "cold cycles (each after a fresh load)")
	steady := fs.Int("steady", 9, "steady cycles")
	churn := fs.Int("churn", 1000, "synthetic sessions registered (and the previous batch removed) before each steady cycle")
	keep := fs.Bool("keep", false, "keep every batch registered (sessions accumulate; they are removed at the end)")
	fs.Parse(args)
	in, err := testrig.Load(*inst)
	if err != nil {
		return err
	}
	ctx := context.Background()
	load := &series{label: "Rego policy load (compile)"}
	coldS := &series{label: "cycle, Rego policy, cold (first cycle after a load)"}
	steadyS := &series{label: fmt.Sprintf("cycle, Rego policy, steady (%d new, %d gone since the last cycle)", *churn, *churn)}
	if *keep {
		steadyS.label = fmt.Sprintf("cycle, Rego policy, steady (%d new since the last cycle, none gone)", *churn)
	}
	raw := &series{label: "raw dump read"}
	var ba *benchAgent
	for r := 0; r < *cold; r++ {
		d, err := rawRead(ctx, in.Anvil)
		if err != nil {
			return err
		}
		raw.add(d, d)
		t0 := time.Now()
		rs, err := engine.Load(ctx, engine.Sources{Policies: []string{*policy}})
		if err != nil {
			return err
		}
		load.add(time.Since(t0), 0)
		if ba != nil {
			ba.close()
		}
		ba = newAgent(in.Anvil, rs)
		t, dd, err := ba.step(ctx)
		if err != nil {
			return err
		}
		coldS.add(t, dd)
		coldS.sessions = ba.src.n
	}
	var prev *testrig.SyntheticConn
	var heap []float64
	var kept []*testrig.SyntheticConn
	if p := os.Getenv("CYCLE_STEADY_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			return fmt.Errorf("CYCLE_STEADY_CPUPROFILE: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	for r := 0; r < *steady; r++ {
		sc, err := testrig.RegisterSynthetic(ctx, in, testrig.SyntheticMix(*churn, int64(1000+r)))
		if err != nil {
			return err
		}
		if *keep {
			kept = append(kept, sc)
		} else if prev != nil {
			if err := prev.Disconnect(ctx); err != nil {
				return err
			}
		}
		prev = sc
		d, err := rawRead(ctx, in.Anvil)
		if err != nil {
			return err
		}
		raw.add(d, d)
		t, dd, err := ba.step(ctx)
		if err != nil {
			return err
		}
		steadyS.add(t, dd)
		steadyS.sessions = ba.src.n
		heap = append(heap, heapAfterGC())
	}
	if *keep {
		for _, sc := range kept {
			if err := sc.Disconnect(ctx); err != nil {
				return err
			}
		}
	} else if prev != nil {
		if err := prev.Disconnect(ctx); err != nil {
			return err
		}
	}
	ba.close()
	raw.sessions, load.sessions = coldS.sessions, coldS.sessions
	rm := quantile(raw.total, 0.5)
	fmt.Println(header)
	fmt.Println(raw.row(rm))
	fmt.Println(load.row(0))
	fmt.Println(coldS.row(rm))
	fmt.Println(steadyS.row(rm))
	if len(heap) > 0 {
		fmt.Printf("\nGo heap in use after a forced GC following each steady cycle (MB): %s\n", fmtList(heap))
	}
	return nil
}

// heapAfterGC is the live heap in MB: what the agent keeps between cycles.
func heapAfterGC() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

func fmtList(v []float64) string {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%.0f", x)
	}
	return b.String()
}

// ---- rule generation ----

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	kind := fs.String("kind", "mix", "mix (networks, users, masks, services, alt, dest), net, user, netuser, kick50")
	n := fs.Int("rules", 1000, "number of rules (kick50: 50)")
	sessions := fs.Int("n", 100000, "SyntheticMix size the rules are drawn from")
	seed := fs.Int64("seed", 1, "SyntheticMix seed")
	out := fs.String("o", "", "rules file")
	dov := fs.String("doveadm", "", "kick50: file of doveadm kick arguments, one per line")
	fs.Parse(args)
	mix := testrig.SyntheticMix(*sessions, *seed)
	var b strings.Builder
	var dargs []string
	switch *kind {
	case "mix":
		genMix(&b, mix, *n)
	case "net", "user", "netuser":
		genNetUser(&b, mix, *n, *kind)
	case "kick50":
		var err error
		if dargs, err = genKick50(&b, mix, *n); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown kind %q", *kind)
	}
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if *dov != "" {
		return os.WriteFile(*dov, []byte(strings.Join(dargs, "\n")+"\n"), 0o644)
	}
	return nil
}

type ruleWriter struct {
	b *strings.Builder
	n int
}

func (w *ruleWriter) rule(body string) {
	fmt.Fprintf(w.b, "  - name: r%04d\n    %s\n", w.n, body)
	w.n++
}

// pick is a deterministic walk over the sessions.
func pick(mix []testrig.SyntheticSession, i int) *testrig.SyntheticSession {
	return &mix[(i*7919+13)%len(mix)]
}

func netOf(ip netip.Addr, i int) string {
	if ip.Is4() {
		return netip.PrefixFrom(ip, 24+i%5).Masked().String()
	}
	return netip.PrefixFrom(ip, 48+8*(i%3)).Masked().String()
}

// genMix writes n rules: 40% networks, 30% exact users, 10% proxy destinations, 10% alt
// values, 10% masks and services (tried on every session). All are drawn from mix, so they
// match some of its sessions.
func genMix(b *strings.Builder, mix []testrig.SyntheticSession, n int) {
	b.WriteString("allow:\n  users: [monitoring@example.com]\n  networks: [127.0.0.0/8]\nrules:\n")
	w := &ruleWriter{b: b}
	nNet, nUser, nDest, nAlt := n*4/10, n*3/10, n/10, n/10
	nScan := n - nNet - nUser - nDest - nAlt
	seen := map[string]bool{}
	for i := 0; len(seen) < nNet; i++ {
		s := pick(mix, i)
		if !s.IP.IsValid() {
			continue
		}
		p := netOf(s.IP, i)
		if !seen[p] {
			seen[p] = true
			w.rule(fmt.Sprintf("networks: [%q]", p))
		}
	}
	for i := range nUser {
		w.rule(fmt.Sprintf("users: [%q]", pick(mix, 100000+i).User))
	}
	for i := range nDest {
		if i < 4 {
			w.rule(fmt.Sprintf("dest_hosts: [10.1.0.%d]\n    users: [\"%s*\"]", i+1, string(rune('a'+i))))
		} else {
			w.rule(fmt.Sprintf("dest_hosts: [172.16.%d.%d]", i/200, 1+i%200))
		}
	}
	for i := 0; i < nAlt; i++ {
		s := pick(mix, 200000+i)
		if len(s.Alt) == 0 {
			w.rule(fmt.Sprintf("passdb_field: user_alt\n    values: [alt-x%d]", i))
			continue
		}
		w.rule(fmt.Sprintf("passdb_field: %s\n    values: [%q]", s.Alt[0].Key, s.Alt[0].Value))
	}
	domains := []string{"example.com", "example.net", "example.org", "mail.test"}
	names := []string{"anna", "ben", "chris", "dana", "erik", "fay", "gus", "hana", "ivan", "jo", "kim", "lea"}
	for i := range nScan {
		switch i % 4 {
		case 0:
			w.rule(fmt.Sprintf("users: [\"*@%s\"]\n    services: [pop3]\n    networks: [\"10.%d.0.0/16\"]", domains[i/4%4], i%256))
		case 1:
			w.rule(fmt.Sprintf("users: [\"%s%d*\"]", names[i%12], 100+i))
		case 2:
			w.rule(fmt.Sprintf("services: [submission]\n    users: [\"%s1%d*\"]\n    except_users: [\"*@mail.test\"]", names[i%12], i))
		case 3:
			w.rule(fmt.Sprintf("passdb_field: user_ext\n    values: [\"ext%d*@ext.example\"]", 100+i))
		}
	}
}

// genNetUser writes n network and/or exact-user rules: the first 10 drawn from mix (they
// select some of its sessions), the others for addresses and users mix never has (240.0.0.0/4,
// 2001:db9::/32, @example.invalid), so that the number of sessions selected stays the same
// and a growing rule count shows only what the lookups cost.
func genNetUser(b *strings.Builder, mix []testrig.SyntheticSession, n int, kind string) {
	b.WriteString("rules:\n")
	w := &ruleWriter{b: b}
	nNet := n / 2
	switch kind {
	case "net":
		nNet = n
	case "user":
		nNet = 0
	}
	matching := min(n, 10)
	for i := 0; i < n; i++ {
		isNet := i < nNet
		if kind == "netuser" {
			isNet = i%2 == 0
		}
		switch {
		case isNet && i < matching:
			s := pick(mix, i)
			for j := 1; !s.IP.IsValid(); j++ {
				s = pick(mix, i+j*1000)
			}
			w.rule(fmt.Sprintf("networks: [%q]", netOf(s.IP, i)))
		case i < matching:
			w.rule(fmt.Sprintf("users: [%q]", pick(mix, 100000+i).User))
		case isNet && i%4 < 2:
			w.rule(fmt.Sprintf("networks: [\"240.%d.%d.%d/%d\"]", i>>12&255, i>>4&255, i&15<<4, 28-i%5))
		case isNet:
			w.rule(fmt.Sprintf("networks: [\"2001:db9:%x:%x::/%d\"]", i>>16, i&0xffff, 64-8*(i%3)))
		default:
			w.rule(fmt.Sprintf("users: [\"nouser%d@example.invalid\"]", i))
		}
	}
}

// genKick50 writes n rules, alternately a network and a user mask, each matching 150–600 of
// mix's sessions (at 100,000), and returns the doveadm kick argument of each.
func genKick50(b *strings.Builder, mix []testrig.SyntheticSession, n int) ([]string, error) {
	b.WriteString("rules:\n")
	w := &ruleWriter{b: b}
	nets := map[string]int{}
	masks := map[string]int{}
	for _, s := range mix {
		if s.IP.Is4() && s.IP.As4()[0] == 10 && !strings.HasSuffix(s.Service, "-login") {
			nets[netip.PrefixFrom(s.IP, 15).Masked().String()]++
		}
		u := s.User
		if at := strings.IndexByte(u, '@'); at > 0 && !strings.HasSuffix(s.Service, "-login") {
			name := strings.TrimRight(u[:at], "0123456789")
			if len(u[:at])-len(name) >= 3 {
				masks[u[:len(name)+2]+"*"]++
			}
		}
	}
	// 150–600 sessions each at 100,000; proportionally fewer in a smaller mix.
	lo := max(1, 150*len(mix)/100000)
	hi := max(4*lo, 600*len(mix)/100000)
	ok := func(m map[string]int) []string {
		var r []string
		for k, v := range m {
			if v >= lo && v <= hi && !strings.ContainsAny(k, " ü") {
				r = append(r, k)
			}
		}
		slices.Sort(r)
		return r
	}
	on, om := ok(nets), ok(masks)
	if len(on) == 0 || len(om) == 0 {
		return nil, fmt.Errorf("kick50: no networks or masks with %d–%d sessions", lo, hi)
	}
	var dargs []string
	for i := 0; i < n; i++ {
		if i%2 == 0 && i/2 < len(on) {
			p := on[i/2*len(on)/((n+1)/2)]
			w.rule(fmt.Sprintf("networks: [%q]", p))
			dargs = append(dargs, p)
		} else {
			m := om[i/2*len(om)/(n/2+1)]
			w.rule(fmt.Sprintf("users: [%q]", m))
			dargs = append(dargs, m)
		}
	}
	return dargs, nil
}
