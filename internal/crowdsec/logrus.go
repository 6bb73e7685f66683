package crowdsec

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

// go-cs-bouncer and CrowdSec's API client log through logrus's package-level
// logger, to stderr in logrus's own format. routeLogrus sends those entries
// to slog instead. The logger is process-wide because logrus's is: the last
// Source created names the slog logger.
var (
	logrusOnce   sync.Once
	logrusTarget atomic.Pointer[slog.Logger]
)

func routeLogrus(l *slog.Logger) {
	logrusTarget.Store(l.With("lib", "go-cs-bouncer"))
	logrusOnce.Do(func() {
		std := logrus.StandardLogger()
		std.SetOutput(io.Discard)
		std.SetFormatter(discardFormatter{})
		std.AddHook(slogHook{})
	})
	// Info at most, whatever slog's level: at Debug the API client dumps
	// every response (each pull's decisions, logins included) and at Trace
	// every request (API key included).
	logrus.SetLevel(logrus.InfoLevel)
}

type slogHook struct{}

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (slogHook) Fire(e *logrus.Entry) error {
	l := logrusTarget.Load()
	if l == nil {
		return nil
	}
	level := slog.LevelDebug
	switch {
	case e.Level <= logrus.ErrorLevel: // panic, fatal, error
		level = slog.LevelError
	case e.Level == logrus.WarnLevel:
		level = slog.LevelWarn
	case e.Level == logrus.InfoLevel:
		level = slog.LevelInfo
	}
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.Enabled(ctx, level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(e.Data))
	for k, v := range e.Data {
		attrs = append(attrs, slog.Any(k, v))
	}
	l.LogAttrs(ctx, level, e.Message, attrs...)
	return nil
}

// discardFormatter skips logrus's formatting of entries nobody reads.
type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }
