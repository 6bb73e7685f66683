package testrig

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// PolicyRequest is one request Dovecot's auth policy client sent.
type PolicyRequest struct {
	Command string         // the URL's command parameter: "allow" or "report"
	Header  http.Header    // e.g. the auth_policy_server_api_header
	Body    map[string]any // the JSON body: strings, and booleans for success, policy_reject, tls
	Raw     string         // the body as sent
}

// Str returns the string attribute key of the body ("" if absent or not a string).
func (r PolicyRequest) Str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

// PolicyAnswer decides the response body to an allow request, e.g. `{"status":0}` or
// `{"status":-1,"msg":"X"}`. It may block until ctx ends to play a hung server. Reports
// always get an empty 200 response.
type PolicyAnswer func(ctx context.Context, r PolicyRequest) string

// PolicyServer is a fake auth policy server on a free 127.0.0.1 port that records what
// Dovecot sends: a test helper, not a model of kickagent's policy server.
type PolicyServer struct {
	URL string // http://127.0.0.1:PORT/, for Policy.URL

	srv     *http.Server
	mu      sync.Mutex
	reqs    []PolicyRequest
	changed chan struct{} // closed and replaced on every new request
	answer  PolicyAnswer
}

// StartPolicyServer starts a PolicyServer answering `{"status":0}` until SetAnswer; it is
// closed when t ends.
func StartPolicyServer(t testing.TB) *PolicyServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &PolicyServer{URL: "http://" + ln.Addr().String() + "/", changed: make(chan struct{})}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// SetAnswer sets how allow requests are answered from now on (nil: `{"status":0}`).
func (s *PolicyServer) SetAnswer(f PolicyAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = f
}

func (s *PolicyServer) serve(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := PolicyRequest{Command: r.URL.Query().Get("command"), Header: r.Header.Clone(), Raw: string(raw)}
	if err := json.Unmarshal(raw, &req.Body); err != nil {
		req.Body = map[string]any{"_error": err.Error()}
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	close(s.changed)
	s.changed = make(chan struct{})
	answer := s.answer
	s.mu.Unlock()
	out := ""
	if req.Command == "allow" {
		out = `{"status":0}`
		if answer != nil {
			out = answer(r.Context(), req)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, out)
}

// Requests returns every request so far, oldest first.
func (s *PolicyServer) Requests() []PolicyRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]PolicyRequest(nil), s.reqs...)
}

// WaitFor waits until the requests whose body has user == user end with a report (Dovecot
// sends it after answering the client) and returns them, oldest first.
func (s *PolicyServer) WaitFor(ctx context.Context, user string) ([]PolicyRequest, error) {
	for {
		s.mu.Lock()
		var got []PolicyRequest
		for _, r := range s.reqs {
			if r.Str("user") == user {
				got = append(got, r)
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if len(got) > 0 && got[len(got)-1].Command == "report" {
			return got, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return got, fmt.Errorf("testrig: no policy report for user %q (%d requests): %w", user, len(got), ctx.Err())
		}
	}
}
