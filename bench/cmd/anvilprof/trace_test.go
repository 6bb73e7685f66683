package main

import (
	"strings"
	"testing"
)

// A 2.3-style dump as perf trace prints it: the request read on fd 9, two
// writes inside the dump loop (one EAGAIN: the socket filled), the loop
// returns, and the buffered rest goes out in one later write.
const sample = `     ? (         ): anvil/77  ... [continued]: epoll_wait())                                   = 1
     1.000 ( 0.010 ms): anvil/77 accept(fd: 5, upeer_sockaddr: 0x7ffd, upeer_addrlen: 0x7ffd)   = 9
     1.020 ( 1.000 ms): anvil/77 epoll_wait(epfd: 4, events: 0x55, maxevents: 8, timeout: -1)   = 1
     2.030 ( 0.005 ms): anvil/77 read(fd: 9, buf: 0x55, count: 8192)                            = 30
     2.100 ( 0.002 ms): anvil/77 write(fd: 9, buf: 0x55, count: 61)                            = 61
     2.200 ( 0.004 ms): anvil/77 write(fd: 9, buf: 0x55, count: 60)                            = -1 EAGAIN (Resource temporarily unavailable)
     7.000 ( 3.000 ms): anvil/77 epoll_wait(epfd: 4, events: 0x55, maxevents: 8, timeout: -1)  = 1
    10.010 ( 0.500 ms): anvil/77 writev(fd: 9, vec: 0x55, vlen: 2)                              = 5000
    10.600 ( 100.000 ms): anvil/77 epoll_wait(epfd: 4, events: 0x55, maxevents: 8, timeout: -1) = 1
`

func TestAnalyse(t *testing.T) {
	calls, err := parseTrace(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 8 {
		t.Fatalf("parsed %d calls, want 8", len(calls))
	}
	st, err := analyse(calls)
	if err != nil {
		t.Fatal(err)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if d := got - want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("Away", st.Away, 7.000-2.020)
	near("Busy", st.Busy, (7.000-2.020)+(10.600-10.000))
	near("Span", st.Span, 10.510-2.035)
	near("WriteSum", st.WriteSum, 0.506)
	if st.Stretches != 2 || st.Writes != 3 || st.WritesAway != 2 || st.WritesFailed != 1 || st.Bytes != 5061 {
		t.Errorf("got %+v", st)
	}
}

// perf trace -p PID prints no comm/pid column.
func TestParseWithoutComm(t *testing.T) {
	calls, err := parseTrace(strings.NewReader(
		"     0.043 ( 0.010 ms): accept4(fd: 3, upeer_sockaddr: 0x7ffe, upeer_addrlen: 0x7ffe, flags: 524288) = 5\n" +
			"    10.542 ( 0.001 ms): write(fd: 5, buf: 0x7f25, count: 61)                          = -1 EAGAIN (Resource temporarily unavailable)\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || calls[0].name != "accept4" || calls[0].ret != 5 || calls[1].fd != 5 || calls[1].errno != "EAGAIN" {
		t.Errorf("got %+v", calls)
	}
}
