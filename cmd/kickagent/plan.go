package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/snapshot"
)

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("snapshot", snapshotUsage, stderr)
	var af anvilFlags
	af.register(fs)
	if code, ok := parseNoArgs(fs, args); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, af.timeout)
	defer cancel()
	snap, err := (&anvil.Client{Path: af.socket}).Dump(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "kickagent snapshot: %v\n", err)
		return exitTempFail
	}
	warnBadLines(stderr, "snapshot", snap.BadLines)
	if err := snapshot.Write(stdout, snap); err != nil {
		fmt.Fprintf(stderr, "kickagent snapshot: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("plan", planUsage, stderr)
	var rf ruleFlags
	rf.register(fs)
	var af anvilFlags
	af.register(fs)
	snapFile := fs.String("snapshot", "", "recorded snapshot (from kickagent snapshot)")
	asJSON := fs.Bool("json", false, "JSON output")
	nowFlag := fs.String("now", "", "evaluate as of this RFC 3339 time")
	var budget engine.Budget
	policyBudgetFlags(fs, &budget, 30*time.Second)
	if code, ok := parseNoArgs(fs, args); !ok {
		return code
	}
	now := time.Now()
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			fmt.Fprintf(stderr, "kickagent plan: --now: %v\n", err)
			return exitUsage
		}
		now = t
	}
	rs, socket, code := loadRules(ctx, &rf, stderr, "plan")
	if rs == nil {
		return code
	}
	snap, err := planSnapshot(ctx, *snapFile, socket, &af)
	if err != nil {
		fmt.Fprintf(stderr, "kickagent plan: %v\n", err)
		return exitTempFail
	}
	warnBadLines(stderr, "plan", snap.BadLines)
	for _, e := range rs.Expired(now) {
		fmt.Fprintf(stderr, "%s:%d: rule %q expired at %s: inactive\n", e.File, e.Line, e.Name, e.Expired.Format(time.RFC3339))
	}
	decisions, err := rs.Evaluate(ctx, engine.Input{Snapshot: snap, Now: now, PolicyBudget: budget})
	var pe *engine.PolicyError
	if err != nil && !errors.As(err, &pe) {
		fmt.Fprintf(stderr, "kickagent plan: %v\n", err)
		return exitFailure
	}
	w := bufio.NewWriter(stdout)
	if *asJSON {
		err = writePlanJSON(w, decisions)
	} else {
		err = writePlanText(w, decisions, snap)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintf(stderr, "kickagent plan: %v\n", err)
		return exitFailure
	}
	if pe != nil {
		// As the agent does: the YAML decisions are printed (and would
		// be enforced); the policy's are missing.
		fmt.Fprintf(stderr, "kickagent plan: %v\nkickagent plan: the Rego policy failed; only the YAML rules' decisions are shown\n", pe)
		return exitFailure
	}
	return exitOK
}

// planSnapshot reads the recorded snapshot, or dumps the live anvil (the
// -a flag, else the config's socket).
func planSnapshot(ctx context.Context, file, cfgSocket string, af *anvilFlags) (*anvil.Snapshot, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return snapshot.Read(f)
	}
	socket := af.socket
	if socket == "" {
		socket = cfgSocket
	}
	ctx, cancel := context.WithTimeout(ctx, af.timeout)
	defer cancel()
	return (&anvil.Client{Path: socket}).Dump(ctx)
}

type planJSON struct {
	snapshot.Record
	Rule   string `json:"rule"`
	Engine string `json:"engine"`
	Reason string `json:"reason"`
	Action string `json:"action"`
}

func writePlanJSON(w io.Writer, ds []engine.Decision) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range ds {
		d := &ds[i]
		if err := enc.Encode(planJSON{snapshot.RecordOf(d.Session), d.Rule, string(d.Engine), d.Reason, string(d.Action)}); err != nil {
			return err
		}
	}
	return nil
}

func writePlanText(w io.Writer, ds []engine.Decision, snap *anvil.Snapshot) error {
	t := newTable("action", "rule", "engine", "username", "service", "pid", "ip", "reason")
	kicks := 0
	for i := range ds {
		d := &ds[i]
		if d.Action == engine.ActionKick {
			kicks++
		}
		t.add(string(d.Action), d.Rule, string(d.Engine), d.Session.User, d.Session.Service,
			strconv.FormatInt(d.Session.PID, 10), addr(d.Session.IP), d.Reason)
	}
	if err := t.write(w); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d of %d sessions would be kicked, %d decisions (Dovecot %s)\n",
		kicks, len(snap.Sessions), len(ds), snap.Protocol.Dovecot())
	return err
}
