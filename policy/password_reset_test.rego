package kickagent_test

test_session_before_reset_kicked if {
	kicked_by("password-reset") == {"a"} with input as input_of([
		first_seen(session("a", "alice@example.com", "192.0.2.1"), "2025-03-01T11:59:59Z"),
		first_seen(session("b", "alice@example.com", "192.0.2.1"), "2025-03-01T12:00:01Z"),
	])
}

test_session_at_reset_kicked if {
	kicked_by("password-reset") == {"a"} with input as input_of([first_seen(session("a", "alice@example.com", "192.0.2.1"), "2025-03-01T12:00:00Z")])
}

test_reset_time_zone if {
	# bob's reset is at 08:30+01:00, 07:30Z.
	kicked_by("password-reset") == {"a"} with input as input_of([
		first_seen(session("a", "bob@example.com", "192.0.2.1"), "2025-03-02T07:29:00Z"),
		first_seen(session("b", "bob@example.com", "192.0.2.1"), "2025-03-02T07:31:00Z"),
	])
}

test_user_case_insensitive if {
	kicked_by("password-reset") == {"a"} with input as input_of([first_seen(session("a", "Alice@Example.COM", "192.0.2.1"), "2025-02-01T00:00:00Z")])
}

test_other_users_not_kicked if {
	kicked_by("password-reset") == set() with input as input_of([first_seen(session("a", "carol@example.com", "192.0.2.1"), "2025-02-01T00:00:00Z")])
}

test_reset_reason if {
	d := data.kickagent.kick with input as input_of([first_seen(session("a", "alice@example.com", "198.51.100.1"), "2025-03-01T11:00:00Z")])
	d == {{
		"session": "a",
		"rule": "password-reset",
		"reason": "session of alice@example.com first seen 2025-03-01T11:00:00Z, at or before the password reset at 2025-03-01T12:00:00Z",
	}}
}

test_reset_times_valid if {
	every _, at in data.kickagent.password_resets {
		time.parse_rfc3339_ns(at)
	}
}
