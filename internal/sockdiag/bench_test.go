package sockdiag

import (
	"context"
	"net"
	"testing"
)

// BenchmarkTCP dumps the established TCP sockets with 5,000 loopback
// connections open (10,000 sockets: both ends are in this process).
func BenchmarkTCP(b *testing.B) {
	const conns = 5000
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan []net.Conn)
	go func() {
		var cs []net.Conn
		for range conns {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			cs = append(cs, c)
		}
		accepted <- cs
	}()
	var clients []net.Conn
	for range conns {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
	}
	servers := <-accepted
	defer func() {
		// A reset, not a FIN: TIME-WAIT sockets would pile up over -count
		// runs, and the kernel walks them in every later dump.
		for _, c := range append(clients, servers...) {
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	conn, err := Open()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	n := 0
	for b.Loop() {
		socks, err := conn.TCP(ctx, States(Established))
		if err != nil {
			b.Fatal(err)
		}
		n = len(socks)
	}
	if n < 2*conns {
		b.Fatalf("dumped %d sockets, want at least %d", n, 2*conns)
	}
	b.ReportMetric(float64(n), "sockets")
}
