package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/kickagent/kickagent/internal/agent"
	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
	"github.com/kickagent/kickagent/internal/authpolicy"
)

// The shipped dashboard and alerting rules query only metrics and labels the
// agent exports, so that renaming a metric cannot silently blank a panel or
// disarm an alert. The truth is a live /metrics of `kickagent run` against a
// fake anvil; vector families without a series yet (no drain ran, no repeat
// kick) come from the descriptors agent.NewMetrics registers.
func TestContribQueriesUseExportedMetrics(t *testing.T) {
	exported := contribScrape(t)
	for name, labels := range contribRegistered(t) {
		if _, ok := exported[name]; !ok {
			exported[name] = labels
		}
	}
	queries := map[string][]string{} // where → expressions
	queries["contrib/grafana/kickagent.json"] = contribDashboardExprs(t, "../../contrib/grafana/kickagent.json")
	alerts, annotations := contribAlertRules(t, "../../contrib/prometheus/kickagent.rules.yml")
	for name, expr := range alerts {
		queries["alert "+name] = []string{expr}
	}
	used := map[string]bool{}
	for where, exprs := range queries {
		for _, expr := range exprs {
			labels := map[string]bool{"instance": true, "job": true}
			for _, name := range contribMetricNames(expr) {
				family, ok := contribFamilyOf(name, exported)
				if !ok {
					t.Errorf("%s: %s is not a metric kickagent exports (query %q)", where, name, expr)
					continue
				}
				used[family] = true
				for _, l := range exported[family] {
					labels[l] = true
				}
				if family != name { // a histogram's _bucket
					labels["le"] = true
				}
			}
			for _, l := range contribLabelNames(expr) {
				if !labels[l] {
					t.Errorf("%s: label %q is on none of the query's metrics (query %q)", where, l, expr)
				}
			}
			if where != "contrib/grafana/kickagent.json" {
				for _, l := range annotations[strings.TrimPrefix(where, "alert ")] {
					if !labels[l] {
						t.Errorf("%s: annotation uses $labels.%s, which its query does not have", where, l)
					}
				}
			}
		}
	}
	// A new kickagent metric gets a panel or an alert, or a reason here.
	notShown := map[string]string{
		"kickagent_config_last_reload_success_timestamp_seconds": "the result gauge and reloads_total say what to act on",
	}
	for name := range exported {
		family, _ := contribFamilyOf(name, exported)
		if strings.HasPrefix(name, "kickagent_") && !used[family] && notShown[family] == "" {
			t.Errorf("%s is exported but neither the dashboard nor an alert shows it", name)
		}
	}
	tested := contribAlertTests(t, "../../contrib/prometheus/kickagent.rules.test.yml")
	for name := range alerts {
		if !tested[name] {
			t.Errorf("alert %s has no promtool unit test in kickagent.rules.test.yml", name)
		}
	}
}

// scrapeRun runs `kickagent run` against a fake anvil until a cycle has
// completed and returns the families of its /metrics with their labels.
func contribScrape(t *testing.T) map[string][]string {
	t.Helper()
	srv := anviltest.New(t, anvil.Proto23, anviltest.WithDump(
		"imap/192.0.2.1/alice\t4194401\t1\npop3/192.0.2.2/bob\t4194402\t1\nimap/192.0.2.3/carol\t4194403\t1\n\n"))
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	// A dry-run decision and an allowed one, so that the rule-labelled
	// families have series.
	text := "allow: {users: [bob]}\nrules:\n  - {name: r1, users: [alice, bob]}\n"
	if err := os.WriteFile(rules, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"run", "-a", srv.Path, "--rules", rules, "--interval", "1s",
			"--metrics", "127.0.0.1:0", "--dry-run", "--state-dir", filepath.Join(dir, "state"),
			"--auth-policy", "127.0.0.1:0"}, io.Discard, pw)
		pw.Close()
		done <- code
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("kickagent run did not stop")
		}
	})
	addr := make(chan string, 1)
	var logMu sync.Mutex
	var logText strings.Builder
	go func() {
		re := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			logMu.Lock()
			logText.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a + "/metrics"
	case <-time.After(30 * time.Second):
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("no metrics listener; log:\n%s", logText.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		body := contribGet(t, url)
		if strings.Contains(body, `kickagent_kicks_total{result="dry-run",rule="r1"}`) {
			return contribFamilies(t, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dry-run kick counted in /metrics within 30s:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func contribGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}

var (
	contribSample    = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	contribLabelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)
)

// families parses exposition text: # TYPE lines name the families, and the
// samples (name, name_bucket, ...) their labels. "up" is added: Prometheus
// gives it to every target.
func contribFamilies(t *testing.T, text string) map[string][]string {
	t.Helper()
	fams := map[string][]string{"up": nil}
	for _, line := range strings.Split(text, "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			if _, ok := fams[name]; !ok {
				fams[name] = nil
			}
			if typ == "histogram" || typ == "summary" {
				fams[name+"_bucket"], fams[name+"_sum"], fams[name+"_count"] = nil, nil, nil
			}
			continue
		}
		m := contribSample.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		for _, lp := range contribLabelPair.FindAllStringSubmatch(m[2], -1) {
			if lp[1] != "le" && lp[1] != "quantile" && !slices.Contains(fams[m[1]], lp[1]) {
				fams[m[1]] = append(fams[m[1]], lp[1])
			}
		}
	}
	if len(fams) < 10 {
		t.Fatalf("too few metric families in /metrics:\n%s", text)
	}
	return fams
}

// familyOf maps a queried name to the exported family it belongs to: a
// histogram's _bucket, _sum and _count series belong to the histogram.
func contribFamilyOf(name string, exported map[string][]string) (string, bool) {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if _, isHist := exported[base+"_bucket"]; isHist {
				return base, true
			}
		}
	}
	_, ok := exported[name]
	return name, ok
}

// contribRecorder is a Registerer that keeps what agent.NewMetrics registers.
type contribRecorder struct{ cs []prometheus.Collector }

func (r *contribRecorder) Register(c prometheus.Collector) error { r.cs = append(r.cs, c); return nil }
func (r *contribRecorder) MustRegister(cs ...prometheus.Collector) {
	r.cs = append(r.cs, cs...)
}
func (r *contribRecorder) Unregister(prometheus.Collector) bool { return false }

var contribDesc = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{([^}]*)\}\}$`)

// registeredFamilies returns the agent's metric names and variable labels,
// from their descriptors.
func contribRegistered(t *testing.T) map[string][]string {
	t.Helper()
	r := &contribRecorder{}
	agent.NewMetrics(r)
	authpolicy.NewMetrics(r) // the auth policy listener's, on the same registry
	ch := make(chan *prometheus.Desc, 100)
	go func() {
		for _, c := range r.cs {
			c.Describe(ch)
		}
		close(ch)
	}()
	fams := map[string][]string{}
	for d := range ch {
		m := contribDesc.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read descriptor %s", d)
		}
		var labels []string
		if m[2] != "" {
			labels = strings.Split(m[2], ",")
		}
		fams[m[1]] = labels
	}
	if len(fams) < 20 {
		t.Fatalf("agent.NewMetrics registered %d families; want the whole set", len(fams))
	}
	return fams
}

// dashboardExprs returns every panel query of a Grafana dashboard.
func contribDashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var exprs []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				exprs = append(exprs, e)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(v)
	if len(exprs) < 15 {
		t.Fatalf("%s: %d queries; the dashboard lost its panels?", path, len(exprs))
	}
	return exprs
}

var contribAnnotationLabel = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)

// alertRules returns each alert's expression and the labels its
// annotations use.
func contribAlertRules(t *testing.T, path string) (map[string]string, map[string][]string) {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	contribReadYAML(t, path, &f)
	exprs, labels := map[string]string{}, map[string][]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			exprs[r.Alert] = r.Expr
			for _, a := range r.Annotations {
				for _, m := range contribAnnotationLabel.FindAllStringSubmatch(a, -1) {
					labels[r.Alert] = append(labels[r.Alert], m[1])
				}
			}
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("%s: %d alerts", path, len(exprs))
	}
	return exprs, labels
}

// alertTests returns the alerts promtool's unit tests evaluate.
func contribAlertTests(t *testing.T, path string) map[string]bool {
	t.Helper()
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	contribReadYAML(t, path, &f)
	tested := map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			tested[a.Alertname] = true
		}
	}
	return tested
}

func contribReadYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var (
	contribIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	contribQuoted   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	contribMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	contribGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	contribSelector = regexp.MustCompile(`\{[^}]*\}`)
)

// metricNames returns the metric names a PromQL expression selects: the
// kickagent_, go_ and process_ identifiers and up, outside strings.
func contribMetricNames(expr string) []string {
	expr = contribQuoted.ReplaceAllString(expr, `""`)
	expr = contribSelector.ReplaceAllString(expr, "{}")
	expr = contribGrouping.ReplaceAllString(expr, "()")
	var names []string
	for _, id := range contribIdent.FindAllString(expr, -1) {
		if strings.HasPrefix(id, "kickagent_") || strings.HasPrefix(id, "go_") || strings.HasPrefix(id, "process_") || id == "up" {
			names = append(names, id)
		}
	}
	return names
}

// labelNames returns the labels an expression matches on or groups by.
func contribLabelNames(expr string) []string {
	expr = contribQuoted.ReplaceAllString(expr, `""`)
	var labels []string
	for _, sel := range contribSelector.FindAllString(expr, -1) {
		for _, m := range contribMatcher.FindAllStringSubmatch(sel, -1) {
			labels = append(labels, m[1])
		}
	}
	for _, g := range contribGrouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
	}
	return labels
}

// The helpers above must see what they are meant to see, or the test
// above would pass on anything.
func TestContribQueryParsing(t *testing.T) {
	expr := `histogram_quantile(0.9, sum by (instance, le) (rate(kickagent_cycle_duration_seconds_bucket{job=~"$job",x="up"}[5m]))) > on (instance) 0.6 * kickagent_interval_seconds or up == 0`
	if got, want := fmt.Sprint(contribMetricNames(expr)), "[kickagent_cycle_duration_seconds_bucket kickagent_interval_seconds up]"; got != want {
		t.Errorf("metricNames = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(contribLabelNames(expr)), "[job x instance le instance]"; got != want {
		t.Errorf("labelNames = %s, want %s", got, want)
	}
}
