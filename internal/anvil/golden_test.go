package anvil_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// goldenDumps lists every capture in testdata. Files holding 2.4 bytes start
// with the greeting line; 2.3 files hold only what follows CONNECT-DUMP.
var goldenDumps = []struct {
	file  string
	proto anvil.Protocol
}{
	{"real-2.3.19.1.dump", anvil.Proto23},
	{"2.3-lmtp-no-ip.dump", anvil.Proto23},   // lmtp/<user>: no IP
	{"2.3-refcount.dump", anvil.Proto23},     // one pid, refcount 2
	{"2.3-ipv6.dump", anvil.Proto23},         // IPv6 and IPv4-mapped clients
	{"2.3-escaped-user.dump", anvil.Proto23}, // escaped TAB and 0x01, a '/' in the user
	{"2.3-empty.dump", anvil.Proto23},        // no sessions: just the terminator
	{"real-2.4.1.dump", anvil.Proto24},
	{"2.4-empty.dump", anvil.Proto24},       // empty header, no sessions: "\n\n"
	{"2.4-alt-columns.dump", anvil.Proto24}, // middle alt column empty, trailing ones absent
	{"2.4-proxy.dump", anvil.Proto24},       // imap-login/pop3-login with dest_ip
	{"2.4-escaped.dump", anvil.Proto24},     // escapes in header, user and alt value
}

// goldenSnapshot is the reviewed, stable form of a parsed dump.
type goldenSnapshot struct {
	Protocol    string          `json:"protocol"`
	ServerMinor int             `json:"server_minor,omitempty"`
	AltNames    []string        `json:"alt_names"`
	Sessions    []goldenSession `json:"sessions"`
}

type goldenSession struct {
	Service     string `json:"service"`
	User        string `json:"user"`
	IP          string `json:"ip"`
	PID         int64  `json:"pid"`
	ConnGUID    string `json:"conn_guid,omitempty"`
	DestIP      string `json:"dest_ip,omitempty"`
	Connections int    `json:"connections"`
	// Alt holds the columns the session carries, by header name: a middle
	// column sent empty is "", a trailing column not sent is absent.
	Alt map[string]string `json:"alt,omitempty"`
}

func toGolden(proto anvil.Protocol, minor int, altNames []string, sessions []anvil.Session) goldenSnapshot {
	g := goldenSnapshot{Protocol: proto.Dovecot(), ServerMinor: minor, AltNames: altNames, Sessions: []goldenSession{}}
	if g.AltNames == nil {
		g.AltNames = []string{}
	}
	for i := range sessions {
		s := &sessions[i]
		gs := goldenSession{Service: s.Service, User: s.User, PID: s.PID, ConnGUID: s.ConnGUID,
			Connections: s.Connections}
		if s.IP.IsValid() {
			gs.IP = s.IP.String()
		}
		if s.DestIP.IsValid() {
			gs.DestIP = s.DestIP.String()
		}
		for j, v := range s.AltValues() {
			if gs.Alt == nil {
				gs.Alt = map[string]string{}
			}
			gs.Alt[altNames[j]] = v
		}
		g.Sessions = append(g.Sessions, gs)
	}
	return g
}

// splitCapture splits a capture into the 2.4 greeting (without "\n"), the
// CONNECT-DUMP reply as the server sends it, and the body the parsers take
// (the reply without its terminating empty line).
func splitCapture(t *testing.T, proto anvil.Protocol, data string) (greeting, reply, body string) {
	t.Helper()
	reply = data
	if proto == anvil.Proto24 {
		var ok bool
		greeting, reply, ok = strings.Cut(data, "\n")
		if !ok || !strings.HasPrefix(greeting, "VERSION\tanvil-server\t") {
			t.Fatalf("2.4 capture does not start with the greeting: %q", greeting)
		}
	}
	if !strings.HasSuffix(reply, "\n") {
		t.Fatalf("capture does not end with the terminator")
	}
	return greeting, reply, reply[:len(reply)-1]
}

func TestGoldenDumps(t *testing.T) {
	// Every capture must be in the table, so that none is silently skipped.
	files, _ := filepath.Glob(filepath.Join("testdata", "*.dump"))
	listed := map[string]bool{}
	for _, d := range goldenDumps {
		listed[d.file] = true
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s is not in goldenDumps", f)
		}
	}

	for _, tc := range goldenDumps {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			greeting, reply, body := splitCapture(t, tc.proto, string(raw))
			var altNames []string
			var sessions []anvil.Session
			var bad anvil.BadLines
			minor := 0
			if tc.proto == anvil.Proto24 {
				f := strings.Split(greeting, "\t")
				if minor, err = strconv.Atoi(f[len(f)-1]); err != nil {
					t.Fatalf("greeting %q: %v", greeting, err)
				}
				altNames, sessions, bad, err = anvil.ParseDump24(body)
			} else {
				sessions, bad, err = anvil.ParseDump23(body)
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if bad.Count != 0 {
				t.Fatalf("parse: %s", bad)
			}
			got := toGolden(tc.proto, minor, altNames, sessions)
			gotJSON, err := json.MarshalIndent(got, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			gotJSON = append(gotJSON, '\n')
			golden := filepath.Join("testdata", strings.TrimSuffix(tc.file, ".dump")+".golden")
			if *update {
				if err := os.WriteFile(golden, gotJSON, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(gotJSON, want) {
				t.Errorf("parsed %s differs from %s (go test -update rewrites it; review the diff):\n got: %s\nwant: %s",
					tc.file, golden, gotJSON, want)
			}

			// The same bytes served by a fake anvil through the client.
			opts := []anviltest.Option{anviltest.WithDump(reply)}
			if tc.proto == anvil.Proto24 {
				opts = append(opts, anviltest.WithGreeting(greeting+"\n"), anviltest.WithHint24())
			} else {
				opts = append(opts, anviltest.WithHint23())
			}
			srv := anviltest.New(t, tc.proto, opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			snap, err := (&anvil.Client{Path: srv.Path}).Dump(ctx)
			if err != nil {
				t.Fatalf("Client.Dump: %v", err)
			}
			if snap.Protocol != tc.proto || snap.ServerMinor != minor {
				t.Errorf("Client.Dump: protocol %v minor %d, want %v minor %d", snap.Protocol, snap.ServerMinor, tc.proto, minor)
			}
			if snap.Bytes != len(reply) {
				t.Errorf("Client.Dump: Bytes = %d, want %d", snap.Bytes, len(reply))
			}
			viaClient, _ := json.MarshalIndent(toGolden(snap.Protocol, snap.ServerMinor, snap.AltNames, snap.Sessions), "", "\t")
			if !bytes.Equal(append(viaClient, '\n'), want) {
				t.Errorf("Client.Dump of %s differs from %s:\n got: %s", tc.file, golden, viaClient)
			}
		})
	}
}
