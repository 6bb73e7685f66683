package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Client addresses by default: loopback (allow-listed by bench/cmd/cycle's mix rules),
// 198.51.100.0/24, 10.0.0.0/8 and 2001:db8::/32 (where the mix rules' networks lie: some
// addresses are refused), 192.0.2.0/24 (blocked by the example Rego policy) and
// 203.0.113.0/24 (no rule).
const defaultNets = "127.0.0.0/8=30,198.51.100.0/24=5,203.0.113.0/24=15,192.0.2.0/24=5,10.0.0.0/8=25,2001:db8::/32=20"

func httpCmd(args []string) (*result, error) {
	fs := flag.NewFlagSet("http", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:9870/", "the policy endpoint (Dovecot's auth_policy_server_url)")
	rate := fs.Float64("rate", 1000, "requests per second")
	dur := fs.Duration("d", 20*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured load before it, at the same rate")
	conns := fs.Int("conns", 100, "keep-alive connections at most, as Dovecot 2.3's policy client (more requests in flight wait)")
	timeout := fs.Duration("timeout", 2*time.Second, "per request (Dovecot's default policy timeout)")
	header := fs.String("header", "", `API header "Name:value" (Dovecot's auth_policy_server_api_header)`)
	users := fs.String("users", "alice,bob,carol,jane,jano,james,dave,eve,john doe", "login names: a,b,c or @FILE")
	nets := fs.String("nets", defaultNets, "client networks and weights: CIDR=w,…")
	fail := fs.Float64("fail", 0.1, "share of failed logins (allow + failed report)")
	dovecot := fs.Int("dovecot", 24, "request fields of Dovecot 23 or 24 (fail_type, user_alt)")
	seed := fs.Uint64("seed", 1, "random seed of the mix")
	asJSON := fs.Bool("json", false, "JSON output")
	raw := fs.String("raw", "", "also write every measured latency to this file (ms, one a line), and those from the send to FILE.send")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *rate <= 0 || *dur <= 0 || *conns < 1 || *fail < 0 || *fail > 1 || (*dovecot != 23 && *dovecot != 24) {
		return nil, errors.New("http: -rate, -d, -conns must be positive, -fail within 0…1, -dovecot 23 or 24")
	}
	us, err := parseUsers(*users)
	if err != nil {
		return nil, err
	}
	ns, err := parseNets(*nets)
	if err != nil {
		return nil, err
	}
	m := &mixer{r: rand.New(rand.NewPCG(*seed, 0x706f6c)), users: us, nets: ns, fail: *fail, dovecot: *dovecot}
	for _, n := range ns {
		m.total += n.weight
	}
	nWarm := int(rate2(*rate, *warmup))
	nMeas := int(rate2(*rate, *dur))
	// Every body is made before the clock starts: the generator shares the CPUs with the
	// server, and should spend as little of them as it can while measuring.
	var reqs []policyRequest
	for len(reqs) < nWarm+nMeas {
		reqs = m.login(reqs)
	}
	reqs = reqs[:nWarm+nMeas]
	hdrName, hdrValue := "", ""
	if *header != "" {
		if n, v, ok := strings.Cut(*header, ":"); ok {
			hdrName, hdrValue = strings.TrimSpace(n), strings.TrimSpace(v)
		} else {
			hdrName, hdrValue = "X-API-Key", *header
		}
	}
	tr := &http.Transport{MaxConnsPerHost: *conns, MaxIdleConnsPerHost: *conns, IdleConnTimeout: time.Minute,
		DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: *timeout}

	t := newTally(nMeas)
	kinds := map[string]int{}
	var mu sync.Mutex
	late := schedule(*rate, len(reqs), func(i int, at time.Time) {
		rq := &reqs[i]
		sent := time.Now()
		answer, err := post(client, *url, rq, hdrName, hdrValue)
		end := time.Now()
		if i < nWarm {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		kinds[rq.kind]++
		// A failed request counts with the time it took to fail: leaving it out would hide
		// exactly the stalls this measures.
		t.lat = append(t.lat, end.Sub(at))
		t.fromSend = append(t.fromSend, end.Sub(sent))
		t.lag = append(t.lag, sent.Sub(at))
		if err != nil {
			t.fail(fmt.Errorf("%s: %w", rq.kind, err))
			return
		}
		t.answers[answer]++
	})
	lat, fromSend, lag := summarise(t.lat), summarise(t.fromSend), summarise(t.lag)
	if err := writeRaw(*raw, t.lat); err != nil {
		return nil, err
	}
	if *raw != "" {
		if err := writeRaw(*raw+".send", t.fromSend); err != nil {
			return nil, err
		}
	}
	return &result{asJSON: *asJSON, What: "auth policy requests to " + *url, Rate: *rate, Duration: dur.Seconds(),
		Sent: nMeas, Latency: lat, FromSend: &fromSend, Lag: &lag, Answers: t.answers, Kinds: kinds, Errors: t.errors,
		ErrorSamples: t.samples, LateMax: ms(late)}, nil
}

func rate2(rate float64, d time.Duration) float64 { return rate * d.Seconds() }

// post sends one request and classifies the answer: allowed, refused (status -1), report,
// or status=N for anything else Dovecot would read.
func post(client *http.Client, url string, rq *policyRequest, hdrName, hdrValue string) (string, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"?command="+rq.command,
		bytes.NewReader(rq.body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if hdrName != "" {
		req.Header.Set(hdrName, hdrValue)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %.100s", resp.StatusCode, body)
	}
	var a struct {
		Status *int `json:"status"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.Status == nil {
		return "", fmt.Errorf("answer %.100q: not {\"status\": N}", body)
	}
	switch {
	case rq.command == "report":
		return "report", nil
	case *a.Status == 0:
		return "allowed", nil
	case *a.Status == -1:
		return "refused", nil
	}
	return fmt.Sprintf("status=%d", *a.Status), nil
}
