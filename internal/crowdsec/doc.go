// Package crowdsec makes kickagent a CrowdSec remediation component: it
// pulls a CrowdSec Local API's decision stream (go-cs-bouncer's
// StreamBouncer) and holds the decisions in force as blocks that the agent
// asks about: Blocked(ip) for the client address, UserBlocked(user) for the
// login.
//
// Taken: decisions of type ban (Config.Types) and scope Ip (one address,
// IPv4-mapped IPv6 folded to IPv4), Range (a network, masked: the LAPI keeps
// "203.0.113.5/24" as typed) and username (ASCII case-insensitive, as
// Dovecot's user masks). Everything else is counted and ignored, simulated
// decisions included. A value kickagent cannot read is refused, logged and
// counted; it never blocks anything.
//
// Lifted: by the LAPI's deletions and by the decision's own duration,
// measured on the local clock from the pull that brought it. The LAPI
// streams one decision per (type, scope, value), the one that ends last,
// and a deletion only when none is left in force; so a Source holds one
// entry per such key, as CrowdSec's own bouncers do, and a deletion of the
// key lifts it whatever decision id it names. Deletions are re-sent on
// several pulls: applying them is idempotent.
//
// Readers get immutable Views (copy on write, rebuilt once per pull that
// changed something), so a poll cycle can hold one revision throughout.
// Before the first successful pull a Source holds nothing: LastPull says so.
//
// Limits of the library: the first connection is retried every 10 s, so a
// LAPI that comes up late is seen up to 10 s later; a pull has no timeout
// of its own (Config.PullTimeout sets one on its HTTP client); it logs
// through logrus's global logger, routed here to slog.
//
// Each agent needs its own bouncer key: the LAPI sends each key the changes
// since that key's last pull, so two agents sharing one split the changes.
package crowdsec
