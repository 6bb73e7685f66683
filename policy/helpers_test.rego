# Helpers shared by the policy tests: input sessions as kickagent builds
# them (see internal/engine/rego.go for the input document).
package kickagent_test

# session returns a Dovecot 2.4 imap session of user from ip, with every
# field the agent sets; override fields with object.union.
session(id, user, ip) := {
	"id": id,
	"user": user,
	"service": "imap",
	"pid": 4242,
	"ip": ip,
	"conn_guid": id,
	"dest_ip": "",
	"alt": {},
	"connections": 1,
	"first_seen": "2025-03-01T10:00:00Z",
	"first_seen_ns": time.parse_rfc3339_ns("2025-03-01T10:00:00Z"),
	"user_sessions": 1,
	"ip_sessions": 1,
}

# first_seen sets a session's first_seen and first_seen_ns.
first_seen(s, at) := object.union(s, {"first_seen": at, "first_seen_ns": time.parse_rfc3339_ns(at)})

# input_of wraps sessions in the input document.
input_of(sessions) := {
	"sessions": sessions,
	"now": "2025-03-03T00:00:00Z",
	"now_ns": time.parse_rfc3339_ns("2025-03-03T00:00:00Z"),
	"dovecot": "2.4",
	"allow": {"users": [], "networks": []},
}

# kicked_by returns the ids of the sessions the rule kicks.
kicked_by(rule) := {d.session | some d in data.kickagent.kick; d.rule == rule}
