// Package match holds the session-selection semantics that every kickagent
// feature shares, written to behave exactly as doveadm who/kick do:
// user masks with '*' and '?' (ASCII case-insensitive, byte-wise), one
// ip[/bits] network per filter, alt-username (passdb field) matching and the
// proxy destination filter.
//
// It does not talk to Dovecot; it only answers "does this session match".
package match
