package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kickagent/kickagent/internal/agent"
	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/authpolicy"
	"github.com/kickagent/kickagent/internal/bruteforce"
	"github.com/kickagent/kickagent/internal/config"
	"github.com/kickagent/kickagent/internal/engine"
)

// authPolicyOn says whether the config asks for the auth policy listener.
func authPolicyOn(c *config.Config) bool {
	return c.AuthPolicy.Listen != "" && c.AuthPolicy.Listen != "off"
}

// newAuthPolicy builds the auth policy server; a (set later, before the
// listener starts) gives it the rules in force and the Dovecot generation.
func newAuthPolicy(c *config.Config, a **agent.Agent, auditLog *audit.Log, reg prometheus.Registerer, log *slog.Logger) *authpolicy.Server {
	p := c.AuthPolicy
	size := p.TableSize
	if size == 0 {
		size = authpolicy.DefaultTableSize
	}
	d := authpolicy.Deps{
		Rules:    func() *engine.Ruleset { return (*a).Rules() },
		Protocol: func() anvil.Protocol { return (*a).Protocol() },
		Logger:   log,
		Metrics:  authpolicy.NewMetrics(reg),
		OnBlock:  func() { (*a).Wake() },
		Breaker:  func() bool { return (*a).BreakerOpen() },
		Counters: func(scope string, window time.Duration) authpolicy.FailureCounter {
			return bruteforce.New(bruteScope(scope), window, size,
				bruteforce.WithPrefixes(authpolicy.NetworkBits4, authpolicy.NetworkBits6))
		},
	}
	if auditLog != nil {
		d.Audit = auditLog // a nil *audit.Log must not become a non-nil interface
	}
	return authpolicy.New(authpolicy.Settings{APIHeader: p.APIHeader, RefuseMessage: p.RefuseMessage,
		DryRun: c.DryRun, FailureWindow: p.FailureWindow.Duration, TableSize: size, StateDir: stateDir(c.StateDir)}, d)
}

func bruteScope(scope string) bruteforce.Scope {
	switch scope {
	case engine.PerNetwork:
		return bruteforce.ScopeNetwork
	case "login":
		return bruteforce.ScopeLogin
	}
	return bruteforce.ScopeIP
}

// serveAuthPolicy starts the listener; it returns the address it listens
// on.
func serveAuthPolicy(ctx context.Context, addr, group string, srv *authpolicy.Server, log *slog.Logger) (string, error) {
	ln, err := authpolicy.Listen(addr, group)
	if err != nil {
		return "", err
	}
	go func() {
		if err := srv.Serve(ctx, ln); err != nil {
			log.Error("auth policy listener stopped; Dovecot's auth_policy_reject_on_fail now decides every login", "err", err)
		}
	}()
	return ln.Addr().String(), nil
}
