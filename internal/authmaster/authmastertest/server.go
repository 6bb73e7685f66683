// Package authmastertest is a scripted fake of Dovecot's auth-master
// socket for tests: it greets, checks the client's handshake and answers
// CACHE-FLUSH over a fake cache as the auth process of Dovecot 2.3 and 2.4
// does (src/auth/auth-master-connection.c, auth-cache.c), or says what a
// test scripts instead.
package authmastertest

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Mode is which of Dovecot's auth sockets the fake is.
type Mode int

const (
	// Master23 is 2.3's auth-master: greeting "VERSION\t1\t1"; a client
	// VERSION line is accepted when its major version is 1.
	Master23 Mode = iota
	// Master24 is 2.4's: greeting "VERSION\t1\t3"; the client's VERSION
	// line must have exactly three fields.
	Master24
	// Userdb is auth-userdb: it greets as auth-master but hangs up on
	// CACHE-FLUSH.
	Userdb
	// AuthClient is auth-client (and the login sockets): MECH, SPID,
	// CUID, COOKIE and DONE lines, then it wants CPID.
	AuthClient
)

// Server is the fake. Set the fields before Start; Cache is what the
// flushes remove from.
type Server struct {
	Mode Mode
	// Cache holds the cache keys as the auth process builds them:
	// "P<id>[+master]\t<user>[\t...]" for passdb and "U..." for userdb
	// entries. Nil with CacheOff means no auth cache (count 0).
	Cache    []string
	CacheOff bool
	// Greeting replaces the mode's greeting when not empty.
	Greeting string
	// Silent accepts connections and never says anything.
	Silent bool
	// GreetAfterClient greets only once the client's first line came, as
	// Dovecot 2.4's auth client sockets do.
	GreetAfterClient bool
	// HangUpAfterGreeting closes each connection once greeted.
	HangUpAfterGreeting bool
	// Reply, when set, answers each command line instead of the fake
	// cache: the text to send, and ok false to hang up after it.
	Reply func(line string) (text string, ok bool)

	// Path is the socket, set by Start.
	Path string

	mu       sync.Mutex
	received []string
}

// Start listens on a socket in a short temporary directory (sun_path holds
// 108 bytes) and serves until the test ends.
func Start(tb testing.TB, s *Server) *Server {
	tb.Helper()
	dir, err := os.MkdirTemp("", "kam")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	s.Path = filepath.Join(dir, "auth-master")
	ln, err := net.Listen("unix", s.Path)
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns sync.Map
	tb.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	return s
}

// Received is every line clients sent, handshakes included.
func (s *Server) Received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.received...)
}

// CacheNow is what is left in the fake cache.
func (s *Server) CacheNow() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.Cache...)
}

func (s *Server) serve(c net.Conn) {
	r := bufio.NewReaderSize(c, 1024)
	if s.Silent {
		_, _ = r.ReadString(0)
		return
	}
	if !s.GreetAfterClient {
		if _, err := c.Write([]byte(s.greeting())); err != nil || s.HangUpAfterGreeting {
			return
		}
	}
	for first := true; ; first = false {
		// The auth process reads lines of at most 1024 bytes and hangs up
		// on a longer one.
		b, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		line := strings.TrimSuffix(string(b), "\n")
		s.mu.Lock()
		s.received = append(s.received, line)
		s.mu.Unlock()
		if first {
			if !s.handshakeOK(line) {
				return
			}
			if s.GreetAfterClient {
				if _, err := c.Write([]byte(s.greeting())); err != nil || s.HangUpAfterGreeting {
					return
				}
			}
			continue
		}
		text, ok := s.answer(line)
		if text != "" {
			if _, err := c.Write([]byte(text)); err != nil {
				return
			}
		}
		if !ok {
			return
		}
	}
}

func (s *Server) greeting() string {
	switch {
	case s.Greeting != "":
		return s.Greeting
	case s.Mode == Master24:
		return "VERSION\t1\t3\nSPID\t4242\n"
	case s.Mode == AuthClient:
		return "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t4242\nCUID\t7\nCOOKIE\t0123456789abcdef\nDONE\n"
	}
	return "VERSION\t1\t1\nSPID\t4242\n"
}

// handshakeOK checks the client's VERSION line as each server does.
func (s *Server) handshakeOK(line string) bool {
	f := strings.Split(line, "\t")
	if f[0] != "VERSION" || len(f) < 2 || f[1] != "1" {
		return false
	}
	if s.Mode == Master24 {
		if len(f) != 3 {
			return false
		}
		_, err := strconv.ParseUint(f[2], 10, 32)
		return err == nil
	}
	return true
}

func (s *Server) answer(line string) (string, bool) {
	if s.Reply != nil {
		return s.Reply(line)
	}
	f := strings.Split(line, "\t")
	if f[0] != "CACHE-FLUSH" || len(f) < 2 || s.Mode == Userdb || s.Mode == AuthClient {
		return "", false
	}
	id, users := f[1], f[2:]
	for i, u := range users {
		users[i] = anvil.Unescape(u)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if !s.CacheOff {
		kept := s.Cache[:0]
		for _, k := range s.Cache {
			if len(users) == 0 || isUser(k, users) {
				n++
				continue
			}
			kept = append(kept, k)
		}
		s.Cache = kept
	}
	return "OK\t" + id + "\t" + strconv.Itoa(n) + "\n", true
}

// isUser is whether cache key k belongs to one of users: after the P/U
// prefix, the passdb/userdb number and an optional +master user, a tab,
// then exactly the name, ending at a tab or the key's end.
func isUser(k string, users []string) bool {
	if k == "" || (k[0] != 'P' && k[0] != 'U') {
		return false
	}
	rest := strings.TrimLeft(k[1:], "0123456789")
	if strings.HasPrefix(rest, "+") {
		i := strings.IndexByte(rest, '\t')
		if i < 0 {
			return false
		}
		rest = rest[i:]
	}
	if !strings.HasPrefix(rest, "\t") {
		return false
	}
	rest = rest[1:]
	for _, u := range users {
		if after, ok := strings.CutPrefix(rest, u); ok && (after == "" || after[0] == '\t') {
			return true
		}
	}
	return false
}
