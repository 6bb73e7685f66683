package bundle

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/logging"
)

func TestOPALoggerToSlog(t *testing.T) {
	var buf bytes.Buffer
	l := opaLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	if l.GetLevel() != logging.Info {
		t.Errorf("level %v at info, want Info (the downloader skips debug-only work)", l.GetLevel())
	}
	l.WithFields(map[string]any{"bundle": "kickagent"}).Error("Bundle download failed: %v.", "boom")
	l.Debug("not shown")
	got := buf.String()
	if !strings.Contains(got, `level=ERROR msg="Bundle download failed: boom." bundle=kickagent`) || strings.Contains(got, "not shown") {
		t.Errorf("log %q", got)
	}
	dl := opaLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if dl.GetLevel() != logging.Debug {
		t.Errorf("level %v at debug, want Debug", dl.GetLevel())
	}
}
