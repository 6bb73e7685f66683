package bundle

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/open-policy-agent/opa/v1/logging"
)

// opaLogger routes OPA's logger (logrus by default, to stderr) to slog, so
// the downloader's and REST client's messages land in the agent's log.
type opaLogger struct{ l *slog.Logger }

var _ logging.Logger = opaLogger{}

func (o opaLogger) Debug(f string, a ...any) { o.l.Debug(fmt.Sprintf(f, a...)) }
func (o opaLogger) Info(f string, a ...any)  { o.l.Info(fmt.Sprintf(f, a...)) }
func (o opaLogger) Warn(f string, a ...any)  { o.l.Warn(fmt.Sprintf(f, a...)) }
func (o opaLogger) Error(f string, a ...any) { o.l.Error(fmt.Sprintf(f, a...)) }

func (o opaLogger) WithFields(m map[string]any) logging.Logger {
	args := make([]any, 0, 2*len(m))
	for k, v := range m {
		args = append(args, k, v)
	}
	return opaLogger{o.l.With(args...)}
}

// GetLevel follows slog's handler: the downloader does extra work (reading
// error bodies) only when debug is on.
func (o opaLogger) GetLevel() logging.Level {
	if o.l.Enabled(context.Background(), slog.LevelDebug) {
		return logging.Debug
	}
	return logging.Info
}

// SetLevel is a no-op: the agent's handler owns the level.
func (opaLogger) SetLevel(logging.Level) {}
