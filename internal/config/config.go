// Package config reads the agent's own settings file (kickagent.yaml):
// where anvil is and where rules and policies live. Rules themselves are
// the engine's business.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the settings file. Relative paths are relative to the file.
type Config struct {
	// AnvilSocket is anvil's socket (default /run/dovecot/anvil).
	AnvilSocket string `yaml:"anvil_socket"`
	// Rules are YAML rule files or directories.
	Rules []string `yaml:"rules"`
	// RulesDir is the drop-in directory (rules.d) that block/reset/drain
	// write to; it is loaded after Rules.
	RulesDir string `yaml:"rules_dir"`
	// Policies are directories of Rego policies.
	Policies []string `yaml:"policy"`

	// The agent's settings (kickagent run); zero values take the defaults.

	// Interval between cycles (default 5s).
	Interval Duration `yaml:"interval"`
	// AuditLog is the JSON-lines audit file ("-": stdout; default none).
	AuditLog string `yaml:"audit_log"`
	// Metrics is the listen address of /metrics and /healthz (default
	// 127.0.0.1:9868; "off" disables).
	Metrics string `yaml:"metrics_listen"`
	// DryRun makes every rule a dry-run rule.
	DryRun bool `yaml:"dry_run"`
	// Limits are the safety valves.
	Limits Limits `yaml:"limits"`
}

// Limits are the agent's safety valves.
type Limits struct {
	// MaxKicksPerCycle caps kicks per cycle over all rules (default 100).
	MaxKicksPerCycle int `yaml:"max_kicks_per_cycle"`
	// BreakerFraction: when one cycle's rules would kick more than this
	// fraction of all sessions, nothing is kicked until the rules change
	// (default 0.5).
	BreakerFraction float64 `yaml:"breaker_fraction"`
	// BreakerMinSessions: the breaker only judges snapshots of at least
	// this many sessions (default 20), so that kicking 1 of 2 sessions on a
	// quiet server does not trip it.
	BreakerMinSessions int `yaml:"breaker_min_sessions"`
	// RepeatThreshold: a user kicked this many times within an hour is
	// reported as looping (default 3).
	RepeatThreshold int `yaml:"repeat_threshold"`
}

// Duration is a time.Duration written as "5s", "1m30s".
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: bad duration %q (e.g. 5s, 1m)", n.Line, n.Value)
	}
	if v <= 0 {
		return fmt.Errorf("line %d: duration must be positive", n.Line)
	}
	d.Duration = v
	return nil
}

// Load reads path strictly: an unknown key is an error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	base := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	c.AnvilSocket = abs(c.AnvilSocket)
	c.RulesDir = abs(c.RulesDir)
	for i := range c.Rules {
		c.Rules[i] = abs(c.Rules[i])
	}
	for i := range c.Policies {
		c.Policies[i] = abs(c.Policies[i])
	}
	return &c, nil
}

// RuleSources lists the rule paths in load order: the rules, then the
// drop-in directory when it exists.
func (c *Config) RuleSources() []string {
	out := append([]string(nil), c.Rules...)
	if c.RulesDir != "" {
		if st, err := os.Stat(c.RulesDir); err == nil && st.IsDir() {
			out = append(out, c.RulesDir)
		}
	}
	return out
}
