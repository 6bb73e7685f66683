# Password reset: after a user's password was reset, kick the sessions
# that were already open (first seen at or before the reset); a session
# first seen later logged in with the new password and stays.
#
# first_seen is when kickagent first saw the session in anvil, within one
# poll interval of its login while the agent runs. Sessions that were open
# before the agent (re)started are first seen at its start: a reset older
# than that does not catch them, so enter a reset before or shortly after
# it happens.
package kickagent

# User -> time of the password reset (RFC 3339). Users compare
# case-insensitively. Example values: replace with your own.
password_resets := {
	"alice@example.com": "2025-03-01T12:00:00Z",
	"bob@example.com": "2025-03-02T08:30:00+01:00",
}

# Keyed by lower-cased user, with the time in nanoseconds; computed once
# per evaluation (a complete rule is cached, a function would not be).
password_reset_by_user := {lower(user): {"at": at, "ns": time.parse_rfc3339_ns(at)} |
	some user, at in password_resets
}

# The latest reset: most sessions began after every reset and are passed
# over without the lookup below (a cheap filter first keeps a policy fast:
# Rego costs microseconds per session and expression).
password_reset_latest_ns := max({r.ns | some r in password_reset_by_user})

kick contains {
	"session": s.id,
	"rule": "password-reset",
	"reason": sprintf("session of %s first seen %s, at or before the password reset at %s", [s.user, s.first_seen, reset.at]),
} if {
	some s in input.sessions
	s.first_seen_ns <= password_reset_latest_ns
	reset := password_reset_by_user[lower(s.user)]
	s.first_seen_ns <= reset.ns
}
