// Package config reads the agent's own settings file (kickagent.yaml):
// where anvil is and where rules and policies live, and the agent's
// settings. Rules themselves are the engine's business.
//
// Every setting is checked when the file is read, by the same Check
// functions the command-line flags use, and every problem is reported as
// a rules file reports its own: file:line: message (engine.Errors).
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/authpolicy"
	"github.com/kickagent/kickagent/internal/engine"
)

// Config is the settings file. Relative paths are relative to the file.
// A key left out keeps its zero value, which the agent reads as "the
// default"; a key that is given must hold a valid value.
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

	// Interval between cycles (default 5s; CheckInterval).
	Interval Duration `yaml:"interval"`
	// IdleInterval is the longest gap between anvil snapshots while the
	// rules select nothing to kick (default 1m; CheckInterval; at most
	// Interval: snapshots every interval).
	IdleInterval Duration `yaml:"idle_interval"`
	// AuditLog is the JSON-lines audit file ("-": stdout; default none).
	AuditLog string `yaml:"audit_log"`
	// Metrics is the listen address of /metrics and /healthz (default
	// 127.0.0.1:9868; "off" disables; CheckMetricsListen).
	Metrics string `yaml:"metrics_listen"`
	// DryRun makes every rule a dry-run rule.
	DryRun bool `yaml:"dry_run"`
	// StateDir keeps what must survive a restart: the cutoffs of active
	// resets (default DefaultStateDir; "off": memory only; CheckStateDir).
	StateDir string `yaml:"state_dir"`
	// Limits are the safety valves.
	Limits Limits `yaml:"limits"`
	// AuthPolicy is the listener for Dovecot's auth policy requests (off
	// unless Listen is set).
	AuthPolicy AuthPolicy `yaml:"auth_policy"`
	// Bundle fetches rules and Rego policies from an OPA bundle service
	// (off unless URL is set).
	Bundle Bundle `yaml:"bundle"`
	// CrowdSec takes ban decisions from a CrowdSec Local API as blocks
	// (off unless URL is set).
	CrowdSec CrowdSec `yaml:"crowdsec"`
}

// CrowdSec configures the CrowdSec decision source (internal/crowdsec).
type CrowdSec struct {
	// URL is the Local API's base URL.
	URL string `yaml:"url"`
	// APIKeyFile holds the bouncer key (cscli bouncers add NAME).
	APIKeyFile string `yaml:"api_key_file"`
	// CAFile verifies an https URL (default: the system's CAs).
	CAFile string `yaml:"ca_file"`
	// Scopes are the decision scopes taken (default ip, range, username).
	Scopes []string `yaml:"scopes"`
	// UpdateFrequency is the wait between pulls (default 5s).
	UpdateFrequency Duration `yaml:"update_frequency"`
}

// Bundle configures the policy bundle source (internal/bundle).
type Bundle struct {
	// URL is the bundle's full URL (http or https).
	URL string `yaml:"url"`
	// VerificationKeys are PEM public key files; a bundle must carry a
	// signature that one of them verifies. Each key's id is its file
	// name without the extension (what the signer passes as key id).
	VerificationKeys []string `yaml:"verification_keys"`
	// Scope, when set, must equal the signature's scope.
	Scope string `yaml:"scope"`
	// PollMin and PollMax bound the delay between polls (defaults 1s
	// and 5s; OPA's own are 60s and 120s).
	PollMin Duration `yaml:"poll_min"`
	PollMax Duration `yaml:"poll_max"`
}

// AuthPolicy configures the auth policy listener (internal/authpolicy).
type AuthPolicy struct {
	// Listen: a loopback address and port, or unix:/path ("" or "off":
	// no listener; authpolicy.CheckListen).
	Listen string `yaml:"listen"`
	// SocketGroup owns a unix: listener's socket (mode 0660): the group
	// of Dovecot's auth process ("dovecot"); a name or a number.
	SocketGroup string `yaml:"socket_group"`
	// APIHeader must match Dovecot's auth_policy_server_api_header
	// ("Name: value", or a bare value sent as X-API-Key); "" checks none.
	APIHeader string `yaml:"api_header"`
	// RefuseMessage is what a refused client is told.
	RefuseMessage string `yaml:"refuse_message"`
	// FailureWindow is the window of the failure counts Rego policies
	// see (default 10m).
	FailureWindow Duration `yaml:"failure_window"`
	// TableSize bounds each failure counter and the block table
	// (default 100000).
	TableSize int `yaml:"table_size"`
}

// Limits are the agent's safety valves.
type Limits struct {
	// MaxKicksPerCycle caps kicks per cycle over all rules (default 100;
	// CheckMaxKicksPerCycle).
	MaxKicksPerCycle int `yaml:"max_kicks_per_cycle"`
	// BreakerFraction: when one cycle's rules would kick more than this
	// fraction of all sessions, nothing is kicked until the rules change
	// (default 0.5; CheckBreakerFraction).
	BreakerFraction float64 `yaml:"breaker_fraction"`
	// BreakerMinSessions: the breaker only judges snapshots of at least
	// this many sessions (default 20), so that kicking 1 of 2 sessions on a
	// quiet server does not trip it (CheckBreakerMinSessions).
	BreakerMinSessions int `yaml:"breaker_min_sessions"`
	// RepeatThreshold: a user kicked this many times within an hour is
	// reported as looping (default 3; CheckRepeatThreshold).
	RepeatThreshold int `yaml:"repeat_threshold"`
	// DumpMaxLineBytes, DumpMaxBytes and DumpMaxSessions bound what one
	// anvil dump may make the agent hold (defaults: anvil.Default*;
	// CheckDumpMax*): a longer line is skipped, a larger dump fails the
	// cycle.
	DumpMaxLineBytes int `yaml:"dump_max_line_bytes"`
	DumpMaxBytes     int `yaml:"dump_max_bytes"`
	DumpMaxSessions  int `yaml:"dump_max_sessions"`
}

// Anvil is the dump bounds for anvil.Client (zero: the default).
func (l Limits) Anvil() anvil.Limits {
	return anvil.Limits{MaxLineBytes: l.DumpMaxLineBytes, MaxDumpBytes: l.DumpMaxBytes, MaxSessions: l.DumpMaxSessions}
}

// Duration is a time.Duration written as "5s", "1m30s".
type Duration struct{ time.Duration }

// topKeys and limitKeys are the keys the file may hold: the yaml tags, in
// field order.
var (
	topKeys    = yamlKeys(reflect.TypeFor[Config]())
	limitKeys  = yamlKeys(reflect.TypeFor[Limits]())
	policyKeys = yamlKeys(reflect.TypeFor[AuthPolicy]())
	bundleKeys = yamlKeys(reflect.TypeFor[Bundle]())
	csKeys     = yamlKeys(reflect.TypeFor[CrowdSec]())
)

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); key != "" {
			keys = append(keys, key)
		}
	}
	return keys
}

// Load reads path strictly. A file that cannot be read is an error
// wrapping the os error; every problem in its content is reported at
// once, as engine.Errors: an unknown key (with the known ones), a key
// given twice, a value of the wrong type or out of bounds, YAML syntax.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, errs := parse(path, data)
	if len(errs) > 0 {
		return nil, errs
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
	if c.StateDir != "off" {
		c.StateDir = abs(c.StateDir)
	}
	for i := range c.Rules {
		c.Rules[i] = abs(c.Rules[i])
	}
	for i := range c.Policies {
		c.Policies[i] = abs(c.Policies[i])
	}
	c.CrowdSec.APIKeyFile = abs(c.CrowdSec.APIKeyFile)
	c.CrowdSec.CAFile = abs(c.CrowdSec.CAFile)
	for i := range c.Bundle.VerificationKeys {
		c.Bundle.VerificationKeys[i] = abs(c.Bundle.VerificationKeys[i])
	}
	return c, nil
}

// parse decodes and checks data, collecting every problem with its line.
func parse(file string, data []byte) (*Config, engine.Errors) {
	var errs engine.Errors
	fail := func(line int, format string, a ...any) {
		errs = append(errs, &engine.Error{File: file, Line: line, Msg: fmt.Sprintf(format, a...)})
	}
	c := &Config{}
	root, ok := engine.DecodeMapping(data, "config file", strings.Join(topKeys, ", "), func(line int, msg string) { fail(line, "%s", msg) })
	if !ok {
		return nil, errs
	}
	if root == nil {
		return c, errs // an empty file sets nothing
	}
	engine.ForEachKey(root, topKeys, func(line int, msg string) { fail(line, "%s", msg) }, func(key string, v *yaml.Node) {
		if key == "auth_policy" {
			if v.Kind != yaml.MappingNode {
				fail(v.Line, "auth_policy: want a mapping with the keys %s", strings.Join(policyKeys, ", "))
				return
			}
			engine.ForEachKey(v, policyKeys, func(line int, msg string) { fail(line, "auth_policy: %s", msg) }, func(k string, pv *yaml.Node) {
				if err := c.AuthPolicy.set(k, pv); err != nil {
					fail(pv.Line, "auth_policy.%s: %v", k, err)
				}
			})
			return
		}
		if key == "crowdsec" {
			if v.Kind != yaml.MappingNode {
				fail(v.Line, "crowdsec: want a mapping with the keys %s", strings.Join(csKeys, ", "))
				return
			}
			engine.ForEachKey(v, csKeys, func(line int, msg string) { fail(line, "crowdsec: %s", msg) }, func(k string, cv *yaml.Node) {
				if err := c.CrowdSec.set(k, cv); err != nil {
					fail(cv.Line, "crowdsec.%s: %v", k, err)
				}
			})
			if c.CrowdSec.URL != "" && c.CrowdSec.APIKeyFile == "" {
				fail(v.Line, "crowdsec: api_key_file missing (the key is read from a file, never given on the command line)")
			}
			return
		}
		if key == "bundle" {
			if v.Kind != yaml.MappingNode {
				fail(v.Line, "bundle: want a mapping with the keys %s", strings.Join(bundleKeys, ", "))
				return
			}
			engine.ForEachKey(v, bundleKeys, func(line int, msg string) { fail(line, "bundle: %s", msg) }, func(k string, bv *yaml.Node) {
				if err := c.Bundle.set(k, bv); err != nil {
					fail(bv.Line, "bundle.%s: %v", k, err)
				}
			})
			if c.Bundle.URL != "" && len(c.Bundle.VerificationKeys) == 0 {
				fail(v.Line, "bundle: verification_keys missing: an unsigned bundle could make every agent kick anyone")
			}
			if c.Bundle.PollMax.Duration != 0 && c.Bundle.PollMax.Duration < c.Bundle.PollMin.Duration {
				fail(v.Line, "bundle: poll_max is shorter than poll_min")
			}
			return
		}
		if key != "limits" {
			if err := c.set(key, v); err != nil {
				fail(v.Line, "%s: %v", key, err)
			}
			return
		}
		if v.Kind != yaml.MappingNode {
			fail(v.Line, "limits: want a mapping with the keys %s", strings.Join(limitKeys, ", "))
			return
		}
		engine.ForEachKey(v, limitKeys, func(line int, msg string) { fail(line, "limits: %s", msg) }, func(k string, lv *yaml.Node) {
			if err := c.Limits.set(k, lv); err != nil {
				fail(lv.Line, "limits.%s: %v", k, err)
			}
		})
	})
	return c, errs
}

// set decodes and checks the value of one top-level key but limits.
func (c *Config) set(key string, v *yaml.Node) error {
	var err error
	switch key {
	case "anvil_socket":
		c.AnvilSocket, err = str(v)
	case "rules":
		c.Rules, err = list(v)
	case "rules_dir":
		c.RulesDir, err = str(v)
	case "policy":
		c.Policies, err = list(v)
	case "interval":
		c.Interval.Duration, err = duration(v, CheckInterval)
	case "idle_interval":
		c.IdleInterval.Duration, err = duration(v, CheckInterval)
	case "audit_log":
		c.AuditLog, err = str(v)
	case "metrics_listen":
		if c.Metrics, err = str(v); err == nil {
			err = CheckMetricsListen(c.Metrics)
		}
	case "dry_run":
		err = decode(v, &c.DryRun, "true or false")
	case "state_dir":
		c.StateDir, err = str(v)
	}
	return err
}

// set decodes and checks the value of one key under auth_policy.
func (p *AuthPolicy) set(key string, v *yaml.Node) error {
	var err error
	switch key {
	case "listen":
		if p.Listen, err = str(v); err == nil {
			err = authpolicy.CheckListen(p.Listen)
		}
	case "socket_group":
		p.SocketGroup, err = str(v)
	case "api_header":
		p.APIHeader, err = str(v)
	case "refuse_message":
		p.RefuseMessage, err = str(v)
	case "failure_window":
		p.FailureWindow.Duration, err = duration(v, CheckFailureWindow)
	case "table_size":
		err = integer(v, &p.TableSize, CheckTableSize)
	}
	return err
}

// set decodes and checks the value of one key under bundle.
func (b *Bundle) set(key string, v *yaml.Node) error {
	var err error
	switch key {
	case "url":
		if b.URL, err = str(v); err == nil {
			err = CheckBundleURL(b.URL)
		}
	case "verification_keys":
		b.VerificationKeys, err = list(v)
	case "scope":
		b.Scope, err = str(v)
	case "poll_min":
		b.PollMin.Duration, err = duration(v, CheckInterval)
	case "poll_max":
		b.PollMax.Duration, err = duration(v, CheckInterval)
	}
	return err
}

// set decodes and checks the value of one key under crowdsec.
func (cs *CrowdSec) set(key string, v *yaml.Node) error {
	var err error
	switch key {
	case "url":
		if cs.URL, err = str(v); err == nil {
			err = CheckBundleURL(cs.URL)
		}
	case "api_key_file":
		cs.APIKeyFile, err = str(v)
	case "ca_file":
		cs.CAFile, err = str(v)
	case "scopes":
		if cs.Scopes, err = list(v); err == nil {
			for _, sc := range cs.Scopes {
				switch strings.ToLower(sc) {
				case "ip", "range", "username":
				default:
					return fmt.Errorf("%q: want ip, range or username", sc)
				}
			}
		}
	case "update_frequency":
		cs.UpdateFrequency.Duration, err = duration(v, CheckInterval)
	}
	return err
}

// CheckBundleURL accepts an absolute http or https URL.
func CheckBundleURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	return nil
}

// set decodes and checks the value of one key under limits.
func (l *Limits) set(key string, v *yaml.Node) error {
	switch key {
	case "max_kicks_per_cycle":
		return integer(v, &l.MaxKicksPerCycle, CheckMaxKicksPerCycle)
	case "breaker_fraction":
		if err := decode(v, &l.BreakerFraction, "a number"); err != nil {
			return err
		}
		return CheckBreakerFraction(l.BreakerFraction)
	case "breaker_min_sessions":
		return integer(v, &l.BreakerMinSessions, CheckBreakerMinSessions)
	case "repeat_threshold":
		return integer(v, &l.RepeatThreshold, CheckRepeatThreshold)
	case "dump_max_line_bytes":
		return integer(v, &l.DumpMaxLineBytes, CheckDumpMaxLineBytes)
	case "dump_max_bytes":
		return integer(v, &l.DumpMaxBytes, CheckDumpMaxBytes)
	case "dump_max_sessions":
		return integer(v, &l.DumpMaxSessions, CheckDumpMaxSessions)
	}
	return nil
}

func str(v *yaml.Node) (string, error) {
	if v.Kind != yaml.ScalarNode {
		return "", errors.New("want a single value")
	}
	if v.Tag == "!!null" || v.Value == "" {
		return "", errors.New("empty value: leave the key out for the default")
	}
	return v.Value, nil
}

// list accepts a list of values, or one value as a list of one.
func list(v *yaml.Node) ([]string, error) {
	if v.Kind == yaml.ScalarNode {
		s, err := str(v)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, errors.New("want a value or a list of values")
	}
	if len(v.Content) == 0 {
		return nil, errors.New("empty list: leave the key out instead")
	}
	out := make([]string, 0, len(v.Content))
	for _, e := range v.Content {
		s, err := str(e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func decode(v *yaml.Node, dst any, want string) error {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" || v.Decode(dst) != nil {
		return fmt.Errorf("%q is not %s", v.Value, want)
	}
	return nil
}

func integer(v *yaml.Node, dst *int, check func(int) error) error {
	if v.Tag != "!!int" {
		return fmt.Errorf("%q is not a whole number", v.Value)
	}
	if err := decode(v, dst, "a whole number"); err != nil {
		return err
	}
	return check(*dst)
}

func duration(v *yaml.Node, check func(time.Duration) error) (time.Duration, error) {
	s, err := str(v)
	if err != nil {
		return 0, err
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return d, check(d)
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
