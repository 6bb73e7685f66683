// Package anviltest runs a scripted fake of Dovecot's anvil on a UNIX socket
// for tests: it speaks the handshake of anvil protocol 1 (Dovecot 2.3, a
// silent server) or 2 (Dovecot 2.4, the server greets first), serves a
// canned CONNECT-DUMP reply, answers other commands with canned replies and
// records every line it receives.
//
// Like the real anvil it never answers an error: a wrong handshake, an
// unknown command or (on 2.4) an empty line after the handshake makes it
// close the connection, so the client sees EOF.
package anviltest

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Greeting24 is the greeting of a Dovecot 2.4 anvil.
const Greeting24 = "VERSION\tanvil-server\t2\t0\n"

// Handshake lines a correct client sends.
const (
	Handshake23 = "VERSION\tanvil\t1\t0"
	Handshake24 = "VERSION\tanvil-client\t2\t0"
)

// sunPathMax is the size of sockaddr_un.sun_path on Linux, NUL included.
const sunPathMax = 108

// Option configures a Server.
type Option func(*Server)

// WithGreeting replaces the 2.4 greeting. raw is written as it is, so it
// must end with "\n" to be a line. It has no effect on a 2.3 server.
func WithGreeting(raw string) Option { return func(s *Server) { s.greeting = raw } }

// WithNoGreeting makes a 2.4 server send no greeting at all (a hung or
// overloaded anvil).
func WithNoGreeting() Option { return func(s *Server) { s.greeting = "" } }

// WithGreetDelay delays the 2.4 greeting by d on every connection (a busy
// anvil). Lines the client sends meanwhile are read only afterwards.
func WithGreetDelay(d time.Duration) Option { return func(s *Server) { s.greetDelay = d } }

// WithDump sets the raw CONNECT-DUMP reply, terminator included, for
// example from anvil.FormatDump23 or anvil.FormatDump24.
func WithDump(raw string) Option { return func(s *Server) { s.dump = raw } }

// WithCloseMidDump makes the server write only the first n bytes of the
// dump reply and then close the connection.
func WithCloseMidDump(n int) Option { return func(s *Server) { s.closeAfter = n } }

// WithDumpRate makes the server write the dump reply at about bytesPerSec,
// in pieces of 16 KB, as a real anvil does while it formats a large table
// (about 100 MB/s for Dovecot 2.4). For benchmarks of reading while parsing.
func WithDumpRate(bytesPerSec int) Option { return func(s *Server) { s.rate = bytesPerSec } }

// WithEndlessDump makes the server answer CONNECT-DUMP with prefix and
// then repeat, over and over, until the client or the server closes the
// connection: a runaway anvil. A repeat without "\n" is a line that never
// ends; a session line repeated is a dump that never ends.
func WithEndlessDump(prefix, repeat string) Option {
	return func(s *Server) { s.endless, s.dump = repeat, prefix }
}

// WithStallDump makes the server never answer CONNECT-DUMP; the
// connection stays open until the client or the server closes it.
func WithStallDump() Option { return func(s *Server) { s.stall = true } }

// WithSilent makes the server accept connections and then neither read
// nor write anything (a stopped anvil, e.g. SIGSTOP, whose connections the
// kernel still completes); a connection stays open until either side
// closes it.
func WithSilent() Option { return func(s *Server) { s.silent = true } }

// WithReply sets the raw reply to command cmd (the first field of a line),
// e.g. WithReply("KICK-USER", "2\n"). It also makes cmd a known command on
// either protocol version. An empty reply means the command gets none.
func WithReply(cmd, raw string) Option {
	return func(s *Server) { s.replies[cmd] = raw }
}

// WithHint24 creates a srv.imap directory next to the socket, the
// per-process admin socket directory only Dovecot 2.4 has.
func WithHint24() Option { return func(s *Server) { s.hint24 = true } }

// WithHint23 creates an ipc file next to the socket, the socket of the ipc
// service only Dovecot 2.3 has.
func WithHint23() Option { return func(s *Server) { s.hint23 = true } }

// Server is a fake anvil listening on Path.
type Server struct {
	// Path is the anvil socket; Dir is its directory (the fake base_dir).
	Path, Dir string

	tb         testing.TB
	proto      anvil.Protocol
	greeting   string
	greetDelay time.Duration
	closeAfter int
	rate       int
	stall      bool
	endless    string
	silent     bool
	hint23     bool
	hint24     bool
	replies    map[string]string

	ln   *net.UnixListener
	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	dump  string
	conns map[net.Conn]struct{}
	lines [][]string // per accepted connection
}

// New starts a fake anvil speaking proto and stops it when the test ends.
// By default a 2.4 server greets with Greeting24 at once, and the dump is
// empty ("\n" on 2.3, "\n\n" on 2.4).
func New(tb testing.TB, proto anvil.Protocol, opts ...Option) *Server {
	tb.Helper()
	if proto != anvil.Proto23 && proto != anvil.Proto24 {
		tb.Fatalf("anviltest: unknown protocol %d", proto)
	}
	s := &Server{
		tb:         tb,
		proto:      proto,
		greeting:   Greeting24,
		closeAfter: -1,
		replies:    map[string]string{},
		done:       make(chan struct{}),
		conns:      map[net.Conn]struct{}{},
	}
	if proto == anvil.Proto23 {
		s.dump = "\n"
		s.replies["LOOKUP"] = "0\n"
		s.replies["PENALTY-DUMP"] = "\n"
		s.replies["CONNECT"] = ""
		s.replies["DISCONNECT"] = ""
	} else {
		s.dump = "\n\n"
		s.replies["KICK-USER"] = "0\n"
		s.replies["KICK-ALT-USER"] = "0\n"
		s.replies["PENALTY-DUMP"] = "\n"
	}
	for _, o := range opts {
		o(s)
	}
	s.Dir = shortTempDir(tb)
	s.Path = filepath.Join(s.Dir, "anvil")
	if s.hint24 {
		if err := os.Mkdir(filepath.Join(s.Dir, "srv.imap"), 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	if s.hint23 {
		if err := os.WriteFile(filepath.Join(s.Dir, "ipc"), nil, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.Path, Net: "unix"})
	if err != nil {
		tb.Fatalf("anviltest: listen: %v", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	tb.Cleanup(s.Close)
	return s
}

// shortTempDir makes a directory whose socket path fits sun_path; t.TempDir
// paths are long (they hold the test name), so a short one under the
// system temporary directory, or /tmp, is used.
func shortTempDir(tb testing.TB) string {
	tb.Helper()
	base := ""
	if len(filepath.Join(os.TempDir(), "ka0123456789", "anvil")) >= sunPathMax {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "ka")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// SetDump replaces the CONNECT-DUMP reply for later commands.
func (s *Server) SetDump(raw string) {
	s.mu.Lock()
	s.dump = raw
	s.mu.Unlock()
}

// Lines returns every line received so far, over all connections in the
// order they were accepted, without their "\n".
func (s *Server) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []string
	for _, c := range s.lines {
		all = append(all, c...)
	}
	return all
}

// ConnLines returns the lines received on the i-th accepted connection
// (0-based), nil if there is none.
func (s *Server) ConnLines(i int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= len(s.lines) {
		return nil
	}
	return append([]string(nil), s.lines[i]...)
}

// Conns returns how many connections were accepted so far.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// Close stops the server and closes its connections. It is safe to call
// more than once; New registers it with tb.Cleanup.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			c.Close()
			return
		default:
		}
		s.conns[c] = struct{}{}
		idx := len(s.lines)
		s.lines = append(s.lines, nil)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c, idx)
	}
}

func (s *Server) record(idx int, line string) {
	s.mu.Lock()
	s.lines[idx] = append(s.lines[idx], line)
	s.mu.Unlock()
}

// sleep waits for d or until the server is closed; false means closed.
func (s *Server) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

func (s *Server) serve(c net.Conn, idx int) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	if s.silent {
		<-s.done
		return
	}
	r := bufio.NewReader(c)
	readLine := func() (string, bool) {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", false // EOF without LF: anvil never parses a partial line
		}
		line = strings.TrimSuffix(line, "\n")
		s.record(idx, line)
		return line, true
	}

	if s.proto == anvil.Proto24 {
		if s.greetDelay > 0 && !s.sleep(s.greetDelay) {
			return
		}
		if s.greeting != "" {
			if _, err := c.Write([]byte(s.greeting)); err != nil {
				return
			}
		}
	}
	line, ok := readLine()
	if !ok || !versionOK(line, s.proto) {
		return
	}
	if s.proto == anvil.Proto24 {
		// The mandatory handshake line; a Go client must send it empty
		// (a "<service>\t<pid>" one would switch to the multiplex format).
		if line, ok = readLine(); !ok || line != "" {
			return
		}
	}
	for {
		line, ok := readLine()
		if !ok {
			return
		}
		if line == "" {
			if s.proto == anvil.Proto24 {
				return // "Anvil client sent empty line"
			}
			continue // 2.3 ignores empty lines
		}
		cmd, _, _ := strings.Cut(line, "\t")
		if cmd == "CONNECT-DUMP" {
			if !s.serveDump(c) {
				return
			}
			continue
		}
		reply, known := s.replies[cmd]
		if !known {
			return // "Unknown command"
		}
		if reply != "" {
			if _, err := c.Write([]byte(reply)); err != nil {
				return
			}
		}
	}
}

// serveDump answers CONNECT-DUMP; false means the connection is to close.
func (s *Server) serveDump(c net.Conn) bool {
	if s.stall {
		<-s.done
		return false
	}
	s.mu.Lock()
	dump := s.dump
	s.mu.Unlock()
	if s.closeAfter >= 0 && s.closeAfter < len(dump) {
		_, _ = c.Write([]byte(dump[:s.closeAfter]))
		return false
	}
	if s.rate > 0 {
		return writePaced(c, dump, s.rate)
	}
	if s.endless != "" {
		return writeEndless(c, dump, s.endless)
	}
	// The string's bytes, not a []byte(dump) copy (net.Conn has no
	// WriteString): a copy per CONNECT-DUMP (9 MB at 100,000 sessions)
	// is garbage the benchmarks would count as the client's. Write only
	// reads them.
	_, err := c.Write(unsafe.Slice(unsafe.StringData(dump), len(dump)))
	return err == nil
}

// writePaced writes data in 16 KB pieces, each not before the time the
// rate allows.
func writePaced(c net.Conn, data string, rate int) bool {
	const piece = 16 << 10
	start := time.Now()
	for off := 0; off < len(data); off += piece {
		due := start.Add(time.Duration(float64(off) / float64(rate) * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if _, err := io.WriteString(c, data[off:min(off+piece, len(data))]); err != nil {
			return false
		}
	}
	return true
}

// writeEndless writes prefix, then repeat in pieces of about 64 KB until a
// write fails; it always returns false (the connection is done).
func writeEndless(c net.Conn, prefix, repeat string) bool {
	piece := []byte(strings.Repeat(repeat, max(1, (64<<10)/len(repeat))))
	if _, err := io.WriteString(c, prefix); err != nil {
		return false
	}
	for {
		if _, err := c.Write(piece); err != nil {
			return false
		}
	}
}

// versionOK checks the client's VERSION line as version_string_verify does:
// the service name must match and the major version must equal the
// server's; the minor must be a number and is ignored.
func versionOK(line string, proto anvil.Protocol) bool {
	want := "VERSION\tanvil\t1\t"
	if proto == anvil.Proto24 {
		want = "VERSION\tanvil-client\t2\t"
	}
	minor, ok := strings.CutPrefix(line, want)
	if !ok {
		return false
	}
	_, err := strconv.ParseUint(minor, 10, 32)
	return err == nil
}
