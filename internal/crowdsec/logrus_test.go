package crowdsec

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// The library's logrus lines reach slog, at Info at most, and logrus's own
// output (stderr) stays empty.
func TestLogrusRouted(t *testing.T) {
	var got bytes.Buffer
	routeLogrus(slog.New(slog.NewTextHandler(&got, &slog.HandlerOptions{Level: slog.LevelDebug})))
	logrus.WithField("attempt", 2).Error("failed to connect to LAPI")
	logrus.Warning("lapi update interval is not defined")
	logrus.Debugf("Response: %s", "a whole body")
	out := got.String()
	for _, want := range []string{`level=ERROR msg="failed to connect to LAPI" lib=go-cs-bouncer attempt=2`,
		`level=WARN msg="lapi update interval is not defined" lib=go-cs-bouncer`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "whole body") {
		t.Errorf("library debug output routed:\n%s", out)
	}
}
