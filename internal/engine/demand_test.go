package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func loadDemandRules(t *testing.T, yaml string) *Ruleset {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := Load(context.Background(), Sources{Rules: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestDemand(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		yaml    string
		selects bool
		due     bool // a reset time in (since, now]
	}{
		{"allow list only", "allow:\n  users: [monitoring]\nrules: []\n", false, false},
		{"one network rule", "rules:\n  - name: n\n    networks: [192.0.2.0/24]\n", true, false},
		{"dry-run rule", "rules:\n  - name: n\n    networks: [192.0.2.0/24]\n    dry_run: true\n", true, false},
		{"expired rule", "rules:\n  - name: n\n    networks: [192.0.2.0/24]\n    expires: 2026-12-06T11:00:00Z\n", false, false},
		{"rule expired since the last snapshot", "rules:\n  - name: n\n    networks: [192.0.2.0/24]\n    expires: 2026-12-06T11:59:59Z\n", false, true},
		{"brute-force rule only", "rules:\n  - name: bf\n    failed_logins: 5\n    within: 1m\n    per: ip\n    block_for: 10m\n", false, false},
		{"past reset", "rules:\n  - name: r\n    users: [alice]\n    logged_in_before: 2026-12-06T11:00:00Z\n", true, false},
		{"reset passed since the last snapshot", "rules:\n  - name: r\n    users: [alice]\n    logged_in_before: 2026-12-06T11:59:30Z\n", true, true},
		{"reset right now", "rules:\n  - name: r\n    users: [alice]\n    logged_in_before: 2026-12-06T12:00:00Z\n", true, true},
		{"future reset", "rules:\n  - name: r\n    users: [alice]\n    logged_in_before: 2026-12-06T12:30:00Z\n", true, false},
		{"policy only", "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rs *Ruleset
			if tc.yaml == "" {
				rs = loadDemandPolicy(t)
			} else {
				rs = loadDemandRules(t, tc.yaml)
			}
			d := rs.Demand(now.Add(-time.Minute), now)
			if d.Selects != tc.selects || d.Due != tc.due {
				t.Errorf("Demand = %+v, want selects %v, due %v", d, tc.selects, tc.due)
			}
		})
	}
	if d := (*Ruleset)(nil).Demand(now, now); d.Selects {
		t.Errorf("nil rule set selects")
	}
}

func loadDemandPolicy(t *testing.T) *Ruleset {
	t.Helper()
	dir := t.TempDir()
	pol := "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"r\"} if {\n\tsome s in input.sessions\n\ts.user == \"mallory\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := Load(context.Background(), Sources{Policies: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}
