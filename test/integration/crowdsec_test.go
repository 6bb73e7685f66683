package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// lapi runs test/crowdsec/lapi.sh (the LAPI test/run.sh started).
func lapi(t *testing.T, args ...string) string {
	t.Helper()
	out, err := lapiTry(t, args...)
	if err != nil {
		t.Fatalf("lapi.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// lapiTry is lapi that returns the error.
func lapiTry(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root, err := testrig.Root()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("../../test/crowdsec/lapi.sh", args...)
	cmd.Env = append(os.Environ(), "KA_ROOT="+root)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// lapiEnv is lapi.sh env, after checking that the LAPI answers.
func lapiEnv(t *testing.T) map[string]string {
	t.Helper()
	lapi(t, "status")
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(lapi(t, "env")))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		env[k] = v
	}
	if env["CROWDSEC_URL"] == "" || env["CROWDSEC_KEY_FILE"] == "" {
		t.Fatal("lapi.sh env: no CROWDSEC_URL or CROWDSEC_KEY_FILE")
	}
	return env
}

// crowdsecConfig is the agent config section for the running LAPI, pulled
// every second.
func crowdsecConfig(t *testing.T) string {
	t.Helper()
	env := lapiEnv(t)
	return fmt.Sprintf("crowdsec:\n  url: %s\n  api_key_file: %s\n  update_frequency: 1s\n", env["CROWDSEC_URL"], env["CROWDSEC_KEY_FILE"])
}

// TestCrowdSecAgent: CrowdSec decisions added with cscli close the real
// sessions they name (an address, a range, a username) and nothing else;
// the allow list wins; deleting a decision lets its client log in and stay.
func TestCrowdSecAgent(t *testing.T) {
	inst := instance(t, testrig.V24)
	ctx := testCtx(t)
	waitQuiet(t, ctx, inst)
	cfg := crowdsecConfig(t)
	lapi(t, "decisions-delete", "--all")
	t.Cleanup(func() { lapi(t, "decisions-delete", "--all") })
	a := startAgent(t, inst, agentOpts{rules: "allow:\n  users: [james]\nrules: []\n", config: cfg})
	a.waitHealthy(t, 10*time.Second)

	hs := hold(t, ctx, inst,
		login{"alice", "127.0.0.241", "imap"},
		login{"bob", "127.0.0.242", "imap"},
		login{"carol", "127.0.0.243", "imap"},
		login{"jane", "127.0.0.245", "imap"},
		login{"james", "127.0.0.241", "pop3"}, // allowed: stays although its address is banned
	)
	within := 3*time.Second + 2*agentInterval

	start := time.Now()
	lapi(t, "decisions-add", "--ip", "127.0.0.241", "--duration", "10m", "--reason", "kickagent-it")
	d := closeTime(t, ctx, hs[0].conn, start, within)
	t.Logf("%s: cscli decisions add --ip → alice closed in %v", inst.Name, d)

	start = time.Now()
	lapi(t, "decisions-add", "--range", "127.0.0.242/32", "--duration", "10m", "--reason", "kickagent-it")
	closeTime(t, ctx, hs[1].conn, start, within)

	start = time.Now()
	lapi(t, "decisions-add", "--scope", "username", "--value", "CAROL", "--duration", "10m", "--reason", "kickagent-it")
	closeTime(t, ctx, hs[2].conn, start, within)

	stayOpen(t, ctx, 2, hs[3].conn, hs[4].conn)
	got := auditKicks(a.auditLog(t))
	want := []string{"alice 127.0.0.241 kicked kick-user", "bob 127.0.0.242 kicked kick-user", "carol 127.0.0.243 kicked kick-user"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s: audit %q, want %q", inst.Name, got, want)
	}

	lapi(t, "decisions-delete", "--ip", "127.0.0.241")
	time.Sleep(2*time.Second + agentInterval) // a pull or two
	again := hold(t, ctx, inst, login{"alice", "127.0.0.241", "imap"})
	stayOpen(t, ctx, 2, again[0].conn)
}
