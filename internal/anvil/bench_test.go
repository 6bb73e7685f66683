package anvil_test

import (
	"context"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

const benchSessions = 100_000

// benchBody returns a generated 100,000-session CONNECT-DUMP reply and the
// body the parser takes (the reply without its terminator).
func benchBody(b *testing.B, proto anvil.Protocol) (reply, body string) {
	b.Helper()
	if proto == anvil.Proto24 {
		reply = anvil.FormatDump24(anviltest.AltNames24, anviltest.Sessions24(benchSessions))
	} else {
		reply = anvil.FormatDump23(anviltest.Sessions23(benchSessions))
	}
	return reply, reply[:len(reply)-1]
}

func BenchmarkParseDump23(b *testing.B) {
	_, body := benchBody(b, anvil.Proto23)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ss, err := anvil.ParseDump23(body)
		if err != nil || len(ss) != benchSessions {
			b.Fatalf("%d sessions, %v", len(ss), err)
		}
	}
}

func BenchmarkParseDump24(b *testing.B) {
	_, body := benchBody(b, anvil.Proto24)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_, ss, err := anvil.ParseDump24(body)
		if err != nil || len(ss) != benchSessions {
			b.Fatalf("%d sessions, %v", len(ss), err)
		}
	}
}

// BenchmarkClientDump takes the 100k dump from the fake anvil: dial,
// handshake, CONNECT-DUMP, read and parse. The protocol is forced so that
// the greeting wait of detection is not measured.
func BenchmarkClientDump(b *testing.B) {
	for _, proto := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		b.Run(proto.Dovecot(), func(b *testing.B) {
			reply, _ := benchBody(b, proto)
			srv := anviltest.New(b, proto, anviltest.WithDump(reply))
			cl := &anvil.Client{Path: srv.Path, Protocol: proto}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			b.SetBytes(int64(len(reply)))
			b.ReportAllocs()
			for b.Loop() {
				snap, err := cl.Dump(ctx)
				if err != nil || len(snap.Sessions) != benchSessions {
					b.Fatalf("%v", err)
				}
			}
		})
	}
}
