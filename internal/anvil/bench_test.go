package anvil_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
	"unsafe"

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
		ss, _, err := anvil.ParseDump23(body)
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
		_, ss, _, err := anvil.ParseDump24(body)
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

// dumpRate is about how fast a Dovecot 2.4 anvil writes a 100k dump (9 MB
// in ~0.09 s on the benchmark machine).
const dumpRate = 100 << 20

// BenchmarkDumpPaced compares, on a fake anvil that writes the 100k dump
// at dumpRate, Conn.Dump as the agent calls it (new connection, size hint
// from the last dump) with a raw read of the same reply (rawDump, the
// floor). Parsing overlaps the writing, so the two should be close.
func BenchmarkDumpPaced(b *testing.B) {
	for _, proto := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		reply, _ := benchBody(b, proto)
		srv := anviltest.New(b, proto, anviltest.WithDump(reply), anviltest.WithDumpRate(dumpRate))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		b.Run(proto.Dovecot()+"/raw", func(b *testing.B) {
			b.SetBytes(int64(len(reply)))
			for b.Loop() {
				if n, err := rawDump(srv.Path, proto); err != nil || n != len(reply) {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
		b.Run(proto.Dovecot()+"/dump", func(b *testing.B) {
			cl := &anvil.Client{Path: srv.Path, Protocol: proto}
			hint := 0
			b.SetBytes(int64(len(reply)))
			b.ReportAllocs()
			for b.Loop() {
				c, err := cl.Open(ctx)
				if err != nil {
					b.Fatal(err)
				}
				c.SetDumpSizeHint(hint)
				snap, err := c.Dump(ctx)
				c.Close()
				if err != nil || len(snap.Sessions) != benchSessions {
					b.Fatalf("%v", err)
				}
				hint = snap.Bytes
			}
		})
	}
}

// rawDump does the handshake, sends CONNECT-DUMP and reads the reply up to
// its terminator without parsing it, as bench/cmd/rawdump does.
func rawDump(path string, proto anvil.Protocol) (int, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	r := bufio.NewReaderSize(c, 1<<20)
	req := "VERSION\tanvil\t1\t0\nCONNECT-DUMP\n"
	if proto == anvil.Proto24 {
		if _, err := r.ReadSlice('\n'); err != nil {
			return 0, err
		}
		req = "VERSION\tanvil-client\t2\t0\n\nCONNECT-DUMP\n"
	}
	if _, err := io.WriteString(c, req); err != nil {
		return 0, err
	}
	total := 0
	if proto == anvil.Proto24 { // the header line, possibly empty
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		total = len(h)
	}
	atLineStart := true
	for {
		buf, err := r.Peek(max(r.Buffered(), 1))
		if err != nil {
			return total, err
		}
		if atLineStart && buf[0] == '\n' {
			return total + 1, nil
		}
		if i := bytes.Index(buf, []byte("\n\n")); i >= 0 {
			return total + i + 2, nil
		}
		atLineStart = buf[len(buf)-1] == '\n'
		total += len(buf)
		_, _ = r.Discard(len(buf))
	}
}

// BenchmarkSnapshotRetained reports the heap a 100k-session 2.4 snapshot
// keeps alive (dump blocks, sessions, alt values) per session.
func BenchmarkSnapshotRetained(b *testing.B) {
	reply, _ := benchBody(b, anvil.Proto24)
	srv := anviltest.New(b, anvil.Proto24, anviltest.WithDump(reply))
	cl := &anvil.Client{Path: srv.Path, Protocol: anvil.Proto24}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := cl.Open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	snap, err := c.Dump(ctx) // sets the size hint, as in the agent
	if err != nil {
		b.Fatal(err)
	}
	var perSession float64
	for b.Loop() {
		snap = nil
		before := heapInUse()
		if snap, err = c.Dump(ctx); err != nil {
			b.Fatal(err)
		}
		perSession = float64(heapInUse()-before) / float64(len(snap.Sessions))
	}
	runtime.KeepAlive(snap)
	b.ReportMetric(perSession, "B/session")
	b.ReportMetric(float64(unsafe.Sizeof(anvil.Session{})), "B/Session")
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkClientStream streams the 100k dump from the fake anvil (who -1).
func BenchmarkClientStream(b *testing.B) {
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
				n := 0
				_, err := cl.Stream(ctx, nil, func(*anvil.Session) error { n++; return nil })
				if err != nil || n != benchSessions {
					b.Fatalf("%d sessions, %v", n, err)
				}
			}
		})
	}
}
