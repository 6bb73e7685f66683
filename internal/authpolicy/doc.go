// Package authpolicy answers Dovecot's authentication policy requests
// (auth_policy_server_url): each login attempt is judged by the agent's
// rule set as the session it would become, and refused when a rule would
// kick that session; failed logins reported back are counted, and a client
// that reaches a brute-force rule's threshold is blocked.
//
// Dovecot 2.3 and 2.4 POST a JSON object of the configured request
// attributes (auth_policy_request_attributes) to URL?command=allow before
// and after authentication, and to URL?command=report after it, adding
// "success" and "policy_reject" (and "tls"). The allow answer is
// {"status": S, "msg": M}: S < 0 refuses (the client sees M), 0 allows,
// S > 0 would delay (tarpit) S seconds, which kickagent never asks.
package authpolicy
