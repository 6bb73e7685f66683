package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version is set for packages with -ldflags "-X main.version=1.2.3"; it
// wins over what the Go toolchain stamped (buildStamp).
var version = ""

// build is what "kickagent version" prints and kickagent_build_info
// exports.
type build struct {
	Version   string // release version, or "dev" when nothing says one
	Revision  string // VCS commit, "+dirty" appended for a modified tree
	Time      string // commit time (RFC 3339), when stamped
	GoVersion string
}

// buildStamp reads the version and commit the Go toolchain stamped into
// the binary: "go install …@v1.2.3" stamps the module version, "go build"
// in a checkout the commit (vcs.revision, vcs.time, vcs.modified) and,
// since Go 1.24, a pseudo-version. -ldflags version overrides the version.
func buildStamp(ldVersion string, bi *debug.BuildInfo, ok bool) build {
	b := build{Version: ldVersion, Revision: "unknown", GoVersion: runtime.Version()}
	if !ok || bi == nil {
		if b.Version == "" {
			b.Version = "dev"
		}
		return b
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	if v := bi.Main.Version; b.Version == "" && v != "" && v != "(devel)" {
		b.Version = v
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && b.Revision != "unknown" {
		b.Revision += "+dirty"
	}
	return b
}

// currentBuild is this binary's build.
func currentBuild() build {
	bi, ok := debug.ReadBuildInfo()
	return buildStamp(version, bi, ok)
}

func (b build) String() string {
	s := fmt.Sprintf("kickagent %s (commit %s", b.Version, b.Revision)
	if b.Time != "" {
		s += ", " + b.Time
	}
	return s + ", " + b.GoVersion + ")"
}

// buildInfoGauge is kickagent_build_info, 1 with the build as labels (the
// Prometheus convention for an info metric).
func buildInfoGauge(b build) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kickagent_build_info",
		Help: "Always 1; the labels say which kickagent build runs."}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(b.Version, b.Revision, b.GoVersion).Set(1)
	return g
}
