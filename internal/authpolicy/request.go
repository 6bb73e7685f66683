package authpolicy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/kickagent/kickagent/internal/anvil"
)

// maxBody bounds a request body: Dovecot's are a few hundred bytes.
const maxBody = 64 << 10

// request is what kickagent reads of one policy request. The password
// hash Dovecot sends (pwhash) is never read, logged or kept.
type request struct {
	login, user, passdbUser, protocol, sessionID string
	remote                                       netip.Addr
	// alt holds the alt-username fields: top-level keys user_*, and the
	// keys of an "alt" object (attributes named alt/user_*).
	alt map[string]string
	// report only: the result of the authentication.
	success, policyReject bool
	failType              string
}

// parseRequest decodes one request body. Values Dovecot sends as strings
// must be strings; unknown keys are ignored (operators add attributes).
func parseRequest(r io.Reader) (*request, error) {
	dec := json.NewDecoder(io.LimitReader(r, maxBody+1))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	req := &request{}
	str := func(key string) (string, error) {
		v, ok := body[key]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%s: want a string, got %T", key, v)
		}
		return s, nil
	}
	var err error
	for _, f := range []struct {
		key string
		to  *string
	}{{"login", &req.login}, {"user", &req.user}, {"passdb_user", &req.passdbUser}, {"protocol", &req.protocol},
		{"session_id", &req.sessionID}, {"fail_type", &req.failType}} {
		if *f.to, err = str(f.key); err != nil {
			return nil, err
		}
	}
	remote, err := str("remote")
	if err != nil {
		return nil, err
	}
	if remote != "" {
		if req.remote, err = anvil.ParseAddr(remote); err != nil {
			return nil, fmt.Errorf("remote: %w", err)
		}
	}
	for _, k := range []struct {
		key string
		to  *bool
	}{{"success", &req.success}, {"policy_reject", &req.policyReject}} {
		if v, ok := body[k.key]; ok {
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("%s: want a boolean, got %T", k.key, v)
			}
			*k.to = b
		}
	}
	for k := range body {
		if strings.HasPrefix(k, "user_") {
			s, err := str(k)
			if err != nil {
				return nil, err
			}
			req.setAlt(k, s)
		}
	}
	if v, ok := body["alt"]; ok {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("alt: want an object, got %T", v)
		}
		for k, v := range obj {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("alt.%s: want a string, got %T", k, v)
			}
			req.setAlt(k, s)
		}
	}
	return req, nil
}

// setAlt records an alt field. An empty value is not carried: Dovecot
// expands an unset %{passdb:…} to "" (before authentication always), and
// anvil has no such column then either.
func (r *request) setAlt(k, v string) {
	if v == "" {
		return
	}
	if r.alt == nil {
		r.alt = map[string]string{}
	}
	r.alt[k] = v
}

// name is the user the session would carry: passdb_user when the
// operator sends it (passdb_user=%{passdb:user}: the name the passdb
// returned, empty before authentication), else user (user=%{user}: the
// name after auth_username_format), else the login name as sent.
func (r *request) name() string {
	switch {
	case r.passdbUser != "":
		return r.passdbUser
	case r.user != "":
		return r.user
	}
	return r.login
}

// failed says whether a report is a failed login that counts toward
// brute force: not a success, not our own refusal, and on 2.4 (which says
// why) a wrong password or an unknown user, not an internal error or a
// disabled account.
func (r *request) failed() bool {
	if r.success || r.policyReject {
		return false
	}
	switch r.failType {
	case "", "credentials", "account":
		return true
	}
	return false
}
