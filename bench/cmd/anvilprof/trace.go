package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
)

// call is one system call of anvil as perf trace prints it.
type call struct {
	start, dur float64 // ms since perf started
	name       string
	fd         int    // the fd argument (read/write/writev), else -1
	ret        int64  // -1 for errors and unknown results
	errno      string // EAGAIN, … for errors
}

func (c call) end() float64 { return c.start + c.dur }

// perf trace: "   12.345 ( 0.003 ms): anvil/1234 write(fd: 9, buf: 0x…, count: 61) = 61".
var lineRE = regexp.MustCompile(`^\s*([0-9.]+) \(\s*([0-9.]*) ms\): (?:\S+/\d+ )?(\w+)\((.*)\)\s+= (\S+)(?: (E[A-Z]+))?`)
var fdRE = regexp.MustCompile(`^fd: (\d+)`)

// parseTrace reads perf trace's output; lines it does not know (a call
// already running when perf attached, "[continued]") are skipped.
func parseTrace(r io.Reader) ([]call, error) {
	var calls []call
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(sc.Text())
		if m == nil || m[2] == "" {
			continue
		}
		c := call{name: m[3], fd: -1, ret: -1, errno: m[6]}
		c.start, _ = strconv.ParseFloat(m[1], 64)
		c.dur, _ = strconv.ParseFloat(m[2], 64)
		if f := fdRE.FindStringSubmatch(m[4]); f != nil {
			c.fd, _ = strconv.Atoi(f[1])
		}
		if v, err := strconv.ParseInt(m[5], 0, 64); err == nil {
			c.ret = v
		}
		calls = append(calls, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read trace: %w", err)
	}
	return calls, nil
}

// dumpStats is what anvil did for one CONNECT-DUMP.
type dumpStats struct {
	// Away: the stretch between two epoll_waits that holds the request's
	// read, i.e. how long anvil's event loop could not serve anyone else
	// (the dump loop, connect_limit_dump).
	Away float64
	// Busy: all time out of epoll_wait from that stretch's start to the
	// reply's last write; Stretches: how many stretches that was.
	Busy      float64
	Stretches int
	// Span: request read → last write of the reply.
	Span float64
	// Writes on the dump's connection: all, those inside the Away stretch,
	// those that failed (EAGAIN: socket full), their summed and longest time.
	Writes, WritesAway, WritesFailed int
	WriteSum, WriteMax               float64
	Bytes                            int64
}

func isWait(n string) bool { return n == "epoll_wait" || n == "epoll_pwait" || n == "epoll_pwait2" }
func isWrite(n string) bool {
	return n == "write" || n == "writev" || n == "sendmsg" || n == "sendto"
}

// analyse finds the dump's connection (the first accept's fd), the read
// that brought CONNECT-DUMP (its last read with data: the client sends
// nothing after it) and measures what followed.
func analyse(calls []call) (dumpStats, error) {
	var st dumpStats
	fd := -1
	for _, c := range calls {
		if (c.name == "accept" || c.name == "accept4") && c.ret >= 0 {
			fd = int(c.ret)
			break
		}
	}
	if fd < 0 {
		return st, fmt.Errorf("no accept in the trace (perf attached too late?)")
	}
	req, last := -1, -1
	for i, c := range calls {
		if c.fd != fd {
			continue
		}
		if c.name == "read" && c.ret > 0 {
			req = i
		}
		if isWrite(c.name) && c.ret > 0 {
			last = i
		}
	}
	if req < 0 || last < req {
		return st, fmt.Errorf("no request read or no reply written on fd %d", fd)
	}
	// The stretch holding the request: from the preceding epoll_wait's
	// return to the next epoll_wait's entry.
	from := 0.0
	for i := req; i >= 0; i-- {
		if isWait(calls[i].name) {
			from = calls[i].end()
			break
		}
	}
	awayEnd := -1.0
	tEnd := calls[last].end()
	inStretch, stretchStart := true, from
	for _, c := range calls[req:] {
		if c.start > tEnd && !inStretch {
			break
		}
		if isWait(c.name) {
			if inStretch {
				if awayEnd < 0 {
					awayEnd = c.start
				}
				st.Busy += c.start - stretchStart
				st.Stretches++
				inStretch = false
			}
			if c.start > tEnd {
				break
			}
			stretchStart, inStretch = c.end(), true
			continue
		}
		if c.fd == fd && isWrite(c.name) {
			st.Writes++
			if awayEnd < 0 {
				st.WritesAway++
			}
			if c.ret < 0 {
				st.WritesFailed++
			} else {
				st.Bytes += c.ret
			}
			st.WriteSum += c.dur
			st.WriteMax = max(st.WriteMax, c.dur)
		}
	}
	if inStretch { // the trace ended inside a stretch
		st.Busy += tEnd - stretchStart
		st.Stretches++
		if awayEnd < 0 {
			awayEnd = tEnd
		}
	}
	st.Away = awayEnd - from
	st.Span = tEnd - calls[req].end()
	return st, nil
}

// String is one run on a line (anvilprof -v).
func (s dumpStats) String() string {
	return fmt.Sprintf("away=%.1fms busy=%.1fms stretches=%d span=%.1fms writes=%d (in away %d, EAGAIN %d) write_sum=%.1fms write_max=%.3fms bytes=%d",
		s.Away, s.Busy, s.Stretches, s.Span, s.Writes, s.WritesAway, s.WritesFailed, s.WriteSum, s.WriteMax, s.Bytes)
}
