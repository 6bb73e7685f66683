package main

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The version comes from the toolchain's stamp, -ldflags overrides it.
func TestBuildStamp(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-06T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	for _, tc := range []struct {
		ld   string
		bi   *debug.BuildInfo
		want string
	}{
		{"", bi, "kickagent v1.2.3 (commit abc123+dirty, 2026-12-06T10:00:00Z, go1.99)"},
		{"1.3.0", bi, "kickagent 1.3.0 (commit abc123+dirty, 2026-12-06T10:00:00Z, go1.99)"},
		{"", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"}}, "kickagent dev (commit unknown, go1.99)"},
	} {
		if got := buildStamp(tc.ld, tc.bi, true).String(); got != tc.want {
			t.Errorf("ld %q: %q, want %q", tc.ld, got, tc.want)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfoGauge(buildStamp("", bi, true)))
	want := `
# HELP kickagent_build_info Always 1; the labels say which kickagent build runs.
# TYPE kickagent_build_info gauge
kickagent_build_info{goversion="go1.99",revision="abc123+dirty",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kickagent_build_info"); err != nil {
		t.Error(err)
	}
}

// version says which commit (or "unknown"), not a bare "dev".
func TestVersionSaysCommit(t *testing.T) {
	if code, out, _ := runCmd(t, "version"); code != exitOK || !strings.Contains(out, "(commit ") {
		t.Errorf("version: %d %q", code, out)
	}
}
