// Command policyload measures kickagent's auth policy endpoint and Dovecot's login latency
// under an open-loop load: requests (or logins) go out on a fixed schedule, whatever the
// answers do, and each latency is measured from its scheduled send time, so that a stall of
// the server (or of a full connection pool) counts against every request it delays instead
// of slowing the load down (no coordinated omission).
//
//	policyload http -url http://127.0.0.1:9870/ -rate 1000 -d 20s [-warmup 2s] [-conns 8] [-json]
//	policyload logins -inst p23 -rate 20 -n 200 [-json]
//
// http sends Dovecot's auth policy requests (POST URL?command=allow|report, JSON bodies as
// test/dovecot/README.md shows them) over a pool of keep-alive connections: a mix modelled on
// logins (each good login sends allow before and after authentication and a successful
// report; a failed one sends allow and a failed report; -fail sets the share of failed
// logins), users from -users, client addresses drawn from -nets. It prints p50/p90/p99/max
// of the latency, the answers (allowed, refused) and the errors.
//
// logins logs in over IMAP to a rig instance of test/dovecot/instance.sh (connect, greeting,
// LOGIN, tagged OK, LOGOUT), each login from its own 127.x.y.z, and prints the same figures
// for connect → LOGIN OK and for the whole exchange.
//
// Exit status: 0 when every request or login got an answer (a refusal is an answer), 1 when
// some failed (the figures are still printed), 2 on bad usage.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: policyload http|logins [flags] (-h for the flags)")
		os.Exit(2)
	}
	var (
		res *result
		err error
	)
	switch os.Args[1] {
	case "http":
		res, err = httpCmd(os.Args[2:])
	case "logins":
		res, err = loginsCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q (want http or logins)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "policyload:", err)
		os.Exit(2)
	}
	if err := res.print(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "policyload:", err)
		os.Exit(2)
	}
	if res.Errors > 0 {
		os.Exit(1)
	}
}

// print writes res as JSON or as text lines.
func (r *result) print(w io.Writer) error {
	if r.asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	_, err := io.WriteString(w, r.text())
	return err
}
