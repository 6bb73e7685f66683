# rules.yaml in Rego. YAML decides one rule per session: the first kick rule
# in file order, else the first dry-run rule; each kick rule here therefore
# also says that no earlier rule matched.
package kickagent

compromised_bob(s) if kickagent.user_match("BOB", s.user)

no_ipv6_loopback(s) if {
	kickagent.in_networks(s.ip, ["::1"])
	not kickagent.user_match("carol", s.user)
}

retire_pop3_ja(s) if {
	kickagent.user_match("ja*", s.user)
	lower(s.service) in {"pop3", "pop3-login"}
}

drain_backend(s) if s.dest_ip == "127.0.0.1"

external_identities(s) if {
	kickagent.user_match("*@ext.example", s.alt.user_ext)
	lower(s.service) == "imap"
}

space_in_name(s) if kickagent.user_match("JOHN DOE", s.user)

block_doc_nets(s) if kickagent.in_networks(s.ip, ["192.0.2.0/24", "198.51.100.0/24", "2001:db8:bad::/48"])

# kick_rule(s) is the first kick rule that selects s.
kick_rule(s) := "compromised-bob" if compromised_bob(s)

else := "no-ipv6-loopback" if no_ipv6_loopback(s)

else := "drain-backend" if drain_backend(s)

else := "external-identities" if external_identities(s)

else := "space-in-name" if space_in_name(s)

else := "block-doc-nets" if block_doc_nets(s)

kick contains {"session": s.id, "rule": r, "reason": "scenario"} if {
	some s in input.sessions
	r := kick_rule(s)
}

kick contains {"session": s.id, "rule": "retire-pop3-ja", "reason": "scenario", "dry_run": true} if {
	some s in input.sessions
	not kick_rule(s)
	retire_pop3_ja(s)
}
