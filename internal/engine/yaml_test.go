package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLoadInvalidYAML pairs each testdata/invalid-* rules file (or file
// set) with the exact errors Load reports: every problem, each with
// file:line, and no Ruleset at all.
func TestLoadInvalidYAML(t *testing.T) {
	// The known keys, as the message lists them.
	ruleKeyList := strings.Join(ruleKeys, ", ")
	tests := []struct {
		rules []string // sources; a single invalid-*.yaml file unless a set
		want  []string
	}{
		// Unknown keys, at each level.
		{[]string{"invalid-unknown-key-top.yaml"}, []string{
			`testdata/invalid-unknown-key-top.yaml:3: unknown key "rule" (known: allow, rules)`}},
		{[]string{"invalid-unknown-key-allow.yaml"}, []string{
			`testdata/invalid-unknown-key-allow.yaml:3: allow: unknown key "network" (known: users, networks)`}},
		{[]string{"invalid-unknown-key-rule.yaml"}, []string{
			`testdata/invalid-unknown-key-rule.yaml:3: rule "block-net": unknown key "network" (known: ` + ruleKeyList + `)`}},
		{[]string{"invalid-duplicate-key.yaml"}, []string{
			`testdata/invalid-duplicate-key.yaml:4: rule "twice": key "users" given twice`}},

		// Bad CIDRs: the line is the bad entry's, not the key's.
		{[]string{"invalid-bad-cidr-networks.yaml"}, []string{
			`testdata/invalid-bad-cidr-networks.yaml:5: rule "block-net": networks: bad network: "198.51.100.0/33": the prefix length must be 0 to 32`}},
		{[]string{"invalid-bad-cidr-except-networks.yaml"}, []string{
			`testdata/invalid-bad-cidr-except-networks.yaml:4: rule "block-users": except_networks: bad network: "10.1.2.300" is not an IPv4 address`}},
		{[]string{"invalid-bad-cidr-allow.yaml"}, []string{
			`testdata/invalid-bad-cidr-allow.yaml:4: allow.networks: bad network: "admins.example.com": not an IP address; want a CIDR such as 192.0.2.0/24 or an address`}},

		// Empty masks, empty lists, null values.
		{[]string{"invalid-empty-mask-users.yaml"}, []string{
			`testdata/invalid-empty-mask-users.yaml:3: rule "empty-user": users: empty mask (use '*' to mean every user)`}},
		{[]string{"invalid-empty-mask-except-users.yaml"}, []string{
			`testdata/invalid-empty-mask-except-users.yaml:4: rule "empty-except": except_users: empty mask (use '*' to mean every user)`}},
		{[]string{"invalid-empty-mask-values.yaml"}, []string{
			`testdata/invalid-empty-mask-values.yaml:4: rule "empty-value": values: empty mask (use '*' to mean every user)`}},
		{[]string{"invalid-empty-mask-allow.yaml"}, []string{
			`testdata/invalid-empty-mask-allow.yaml:4: allow.users: empty mask`}},
		{[]string{"invalid-empty-list.yaml"}, []string{
			`testdata/invalid-empty-list.yaml:4: rule "empty-list": users: empty list: give at least one entry`}},
		{[]string{"invalid-null-value.yaml"}, []string{
			`testdata/invalid-null-value.yaml:4: rule "null-users": users: empty value: give at least one entry`}},

		// Values of the wrong kind.
		{[]string{"invalid-bad-expires.yaml"}, []string{
			`testdata/invalid-bad-expires.yaml:4: rule "temp-block": expires: "2030-01-01" is not an RFC 3339 time (e.g. 2026-12-31T23:00:00Z)`}},
		{[]string{"invalid-list-for-scalar.yaml"}, []string{
			`testdata/invalid-list-for-scalar.yaml:2: name: want a single value`}},
		{[]string{"invalid-list-for-int.yaml"}, []string{
			`testdata/invalid-list-for-int.yaml:4: rule "drain": max_kicks_per_cycle: want a single value`}},
		{[]string{"invalid-bad-bool.yaml"}, []string{
			`testdata/invalid-bad-bool.yaml:4: rule "try": dry_run: want true or false, not "perhaps"`}},
		{[]string{"invalid-max-kicks-negative.yaml"}, []string{
			`testdata/invalid-max-kicks-negative.yaml:4: rule "drain": max_kicks_per_cycle must be 0 (no limit) or more`}},
		{[]string{"invalid-dest-hostname.yaml"}, []string{
			`testdata/invalid-dest-hostname.yaml:3: rule "drain": dest_hosts: "backend2.example.com": not an IP address (anvil records the backend's address; host names are not resolved)`}},
		{[]string{"invalid-bad-service.yaml"}, []string{
			`testdata/invalid-bad-service.yaml:3: rule "svc": services: bad service name "pop 3"`}},

		// Rule invariants.
		{[]string{"invalid-no-selector.yaml"}, []string{
			`testdata/invalid-no-selector.yaml:2: rule "nothing": no selector: give at least one of users, networks, services, dest_hosts, passdb_field+values`}},
		{[]string{"invalid-no-name.yaml"}, []string{
			`testdata/invalid-no-name.yaml:2: a rule needs a name`}},
		{[]string{"invalid-passdb-field-without-values.yaml"}, []string{
			`testdata/invalid-passdb-field-without-values.yaml:3: rule "alt-no-values": passdb_field "user_alt" needs values (masks of the alt username)`}},
		{[]string{"invalid-values-without-passdb-field.yaml"}, []string{
			`testdata/invalid-values-without-passdb-field.yaml:4: rule "values-no-field": values need passdb_field (the user_* field they match)`}},

		// File structure.
		{[]string{"invalid-syntax.yaml"}, []string{
			`testdata/invalid-syntax.yaml:3: did not find expected ',' or ']'`}},
		{[]string{"invalid-two-documents.yaml"}, []string{
			`testdata/invalid-two-documents.yaml:4: more than one YAML document in a rules file`}},
		{[]string{"invalid-not-mapping.yaml"}, []string{
			`testdata/invalid-not-mapping.yaml:1: a rules file is a mapping with the keys allow and rules`}},
		{[]string{"invalid-rule-not-mapping.yaml"}, []string{
			`testdata/invalid-rule-not-mapping.yaml:2: a rule is a mapping (name, selectors, options)`}},

		// A name reused in a drop-in names both places.
		{[]string{"invalid-duplicate-name/rules.yaml", "invalid-duplicate-name/rules.d"}, []string{
			`testdata/invalid-duplicate-name/rules.d/50-incident.yaml:5: rule "compromised-account": duplicate rule name (first defined at testdata/invalid-duplicate-name/rules.yaml:5)`}},

		// One bad file spoils the set, and every error of every file is
		// reported, not just the first.
		{[]string{"invalid-set/rules.yaml", "invalid-set/rules.d"}, []string{
			`testdata/invalid-set/rules.d/20-bad.yaml:8: rule "typo": unknown key "user" (known: ` + ruleKeyList + `)`,
			`testdata/invalid-set/rules.d/20-bad.yaml:3: rule "bad-net": networks: bad network: "198.51.100.0/33": the prefix length must be 0 to 32`,
			`testdata/invalid-set/rules.d/20-bad.yaml:6: rule "bad-time": expires: "tomorrow" is not an RFC 3339 time (e.g. 2026-12-31T23:00:00Z)`,
			`testdata/invalid-set/rules.d/30-bad.yaml:2: allow.networks: bad network: "not-a-net": not an IP address; want a CIDR such as 192.0.2.0/24 or an address`,
			`testdata/invalid-set/rules.d/30-bad.yaml:4: rule "good-rule": duplicate rule name (first defined at testdata/invalid-set/rules.yaml:4)`,
		}},
		{[]string{"invalid-set/rules.yaml", "does-not-exist.yaml"}, []string{
			`testdata/does-not-exist.yaml: cannot read rules: stat testdata/does-not-exist.yaml: no such file or directory`}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		t.Run(strings.Join(tt.rules, "+"), func(t *testing.T) {
			var src Sources
			for _, r := range tt.rules {
				src.Rules = append(src.Rules, filepath.Join("testdata", r))
				covered[r] = true
			}
			rs, err := Load(context.Background(), src)
			if rs != nil {
				t.Errorf("Load returned a Ruleset with %d rules; want nil", rs.RuleCount())
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load error = %v (%T); want Errors", err, err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	// Every invalid-*.yaml file is paired with its error.
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s: not in the table", f)
		}
	}
}

// TestYAMLSyntaxErrorLines checks that syntax errors point at the line of
// the problem (yaml.v3 reports parser errors one line early).
func TestYAMLSyntaxErrorLines(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"mapping value in a plain scalar", "rules:\n  - name: a\n    users: x: y\n",
			"f.yaml:3: mapping values are not allowed in this context"},
		{"tab indentation", "rules:\n\t- name: a\n",
			"f.yaml:2: found character that cannot start any token"},
		{"unclosed flow list", "rules:\n  - name: a\n    users: [x\n  - name: b\n",
			"f.yaml:3: did not find expected ',' or ']'"},
		{"key outdented out of its mapping", "allow:\n  users: [a]\n rules: []\n",
			"f.yaml:3: did not find expected key"},
		{"syntax error in a second document", "rules:\n  - name: a\n    users: [x]\n---\nrules: [\n",
			"f.yaml:6: did not find expected node content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := parseRulesFile("f.yaml", []byte(tt.text))
			if len(errs) != 1 || errs[0].Error() != tt.want {
				t.Errorf("errors = %v; want %s", errs, tt.want)
			}
		})
	}
}

// TestLoadEmpty: an empty file or one with only comments defines nothing
// and is valid.
func TestLoadEmpty(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"empty.yaml": "", "comments.yaml": "# nothing yet\n", "null.yaml": "~\n"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		rs, err := Load(context.Background(), Sources{Rules: []string{p}})
		if err != nil || rs.RuleCount() != 0 {
			t.Errorf("%s: Load = %v, %v; want 0 rules, no error", name, rs, err)
		}
	}
}

// TestParseNetwork covers the address forms a rule accepts.
func TestParseNetwork(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.0/24", "192.0.2.0/24"},
		{"192.0.2.7", "192.0.2.7/32"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		// IPv4-mapped networks are IPv4 networks: sessions' addresses are
		// unmapped before lookup.
		{"::ffff:192.0.2.0/120", "error"}, // matches nothing in doveadm: refused
		{"::ffff:192.0.2.7", "error"},
		{"127.2", "error"}, // old-style IPv4 text: refused
		{"127.000.000.002", "127.0.0.2/32"},
		{"fe80::1%lo", "fe80::1%lo/128"},
		{"fe80::1%nosuch0", "error"},
		{"192.0.2.0/33", "error"},
		{"fe80::/10%eth0", "error"},
		{"host.example.com", "error"},
		{"", "error"},
	}
	for _, tt := range tests {
		p, err := parseNetwork(tt.in)
		got := p.String()
		if err != nil {
			got = "error"
		}
		if got != tt.want {
			t.Errorf("parseNetwork(%q) = %s (%v); want %s", tt.in, got, err, tt.want)
		}
	}
}
