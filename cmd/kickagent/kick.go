package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/ipc"
	"github.com/kickagent/kickagent/internal/kick"
	"github.com/kickagent/kickagent/internal/match"
	"github.com/kickagent/kickagent/internal/snapshot"
)

func runKick(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("kick", kickUsage, stderr)
	var af anvilFlags
	af.register(fs)
	field := fs.String("f", "", "alt-username field")
	dest := fs.String("h", "", "proxy destination IP")
	dryRun := fs.Bool("dry-run", false, "kick nothing")
	asJSON := fs.Bool("json", false, "JSON output")
	force := fs.Bool("force", false, "allow collateral kicks")
	ipcPath := fs.String("ipc", "", "Dovecot 2.3 ipc socket")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOr(err)
	}
	filter, err := match.Parse(pos, *field)
	if err == nil && *dest != "" {
		filter.DestIP, err = parseDest(*dest)
	}
	if err == nil && len(filter.Masks) == 0 && !filter.HasNetwork() && !filter.DestIP.IsValid() {
		err = errors.New("give a user mask, a network or -h dest_host (use '*' to kick everyone)")
	}
	if err != nil {
		fmt.Fprintf(stderr, "kickagent kick: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, af.timeout)
	defer cancel()
	conn, err := (&anvil.Client{Path: af.socket}).Open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "kickagent kick: %v\n", err)
		return exitTempFail
	}
	defer conn.Close()
	snap, err := conn.Dump(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "kickagent kick: %v\n", err)
		return exitTempFail
	}
	warnBadLines(stderr, "kick", snap.BadLines)
	sig := kick.ForSocket(af.socket)
	opts := kick.Options{Force: *force, DryRun: *dryRun, Sockets: kick.KernelSockets{Proc: sig}}
	var results []kick.Result
	var runErr error
	if plan := kick.NewPlan(snap, filter.Match); len(plan.Units) > 0 || len(plan.Skipped) > 0 {
		results, runErr = kick.Run(ctx, conn, sig, plan, opts)
	}
	// Dovecot 2.3 keeps proxied sessions out of anvil; its ipc socket
	// lists and kicks them.
	if snap.Protocol == anvil.Proto23 && runErr == nil {
		path := *ipcPath
		if path == "" {
			path = filepath.Join(filepath.Dir(cmp.Or(af.socket, anvil.DefaultSocket)), "ipc")
		}
		if _, err := os.Stat(path); err == nil || *ipcPath != "" {
			var pr []kick.Result
			pr, runErr = kick.RunProxies23(ctx, &ipc.Client{Path: path}, filter.Match, opts)
			results = append(results, pr...)
		}
	}
	if len(results) == 0 && runErr == nil {
		fmt.Fprintln(stderr, "no users kicked")
		return exitNotFound
	}
	w := bufio.NewWriter(stdout)
	if *asJSON {
		err = writeKickJSON(w, results)
	} else {
		err = writeKickText(w, stderr, results, *dryRun)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	switch {
	case runErr != nil:
		fmt.Fprintf(stderr, "kickagent kick: %v\n", runErr)
		return exitTempFail
	case err != nil:
		fmt.Fprintf(stderr, "kickagent kick: %v\n", err)
		return exitFailure
	}
	for _, r := range results {
		if r.Outcome != kick.Kicked && r.Outcome != kick.DryRun {
			return exitPartial
		}
	}
	return exitOK
}

// parseDest accepts an IP literal only: on 2.4 anvil records the address
// the proxy connected to, so a name would have to be resolved the same way
// the proxy did, and a stale answer would kick the wrong backend. It is
// compared as doveadm kick -h compares (match.SameDest).
func parseDest(s string) (netip.Addr, error) {
	a, err := match.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("-h: %w; give the proxy destination as an IP address (host names are not resolved)", err)
	}
	return a, nil
}

func writeKickText(w io.Writer, stderr io.Writer, results []kick.Result, dryRun bool) error {
	var users []string
	kicked := 0
	for _, r := range results {
		s := r.Session
		switch r.Outcome {
		case kick.Kicked, kick.DryRun:
			kicked += max(s.Connections, 1)
			if !slices.Contains(users, s.User) {
				users = append(users, s.User)
			}
		case kick.RefusedCollateral:
			if r.Session == r.Unit.Targets[0] {
				how := fmt.Sprintf("pid %d (%s)", r.Unit.PID, r.Unit.Service)
				if r.Unit.PID == 0 {
					how = "Dovecot 2.3's ipc KICK of " + r.Unit.User
				}
				why := ""
				if r.Err != nil {
					why = " (" + r.Err.Error() + ")"
				}
				fmt.Fprintf(stderr, "warning: not kicking %s: %s would also close connections the command did not name: %s%s; use --force to kick anyway\n",
					describe(r.Unit.Targets), how, describe(r.Unit.Collateral), why)
			}
		case kick.StillConnected:
			fmt.Fprintf(stderr, "warning: %s is still connected after the kick\n", describe([]*anvil.Session{s}))
		case kick.Failed, kick.Skipped:
			fmt.Fprintf(stderr, "warning: %s not kicked: %v\n", describe([]*anvil.Session{s}), r.Err)
		}
	}
	slices.Sort(users)
	if kicked == 0 {
		_, err := fmt.Fprintln(w, "no users kicked")
		return err
	}
	verb := "kicked"
	if dryRun {
		verb = "would be kicked (dry run)"
		fmt.Fprintln(w, "connections from the following users would be kicked:")
	} else {
		fmt.Fprintln(w, "kicked connections from the following users:")
	}
	fmt.Fprintln(w, strings.Join(users, " "))
	_, err := fmt.Fprintf(w, "%d connections %s\n", kicked, verb)
	return err
}

// describe lists sessions as "user (service pid ip)".
func describe(ss []*anvil.Session) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		if s.PID == 0 { // a Dovecot 2.3 proxy, known only to ipc
			parts[i] = fmt.Sprintf("%s (%s %s -> %s)", s.User, s.Service, addr(s.IP), addr(s.DestIP))
			continue
		}
		parts[i] = fmt.Sprintf("%s (%s pid %d %s)", s.User, s.Service, s.PID, addr(s.IP))
	}
	return strings.Join(parts, ", ")
}

type kickJSON struct {
	snapshot.Record
	Outcome    string `json:"outcome"`
	Method     string `json:"method,omitempty"`
	Collateral bool   `json:"collateral"`
	Error      string `json:"error,omitempty"`
}

func writeKickJSON(w io.Writer, results []kick.Result) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range results {
		rec := kickJSON{Record: snapshot.RecordOf(r.Session), Outcome: string(r.Outcome), Method: r.Method, Collateral: r.Collateral}
		if r.Err != nil {
			rec.Error = r.Err.Error()
		}
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	return nil
}
