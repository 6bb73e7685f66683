package testrig

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/kickagent/kickagent/internal/anvil"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// MinSyntheticPID is the smallest pid a synthetic session may use: above any Linux pid_max
// (4194304), so no kick can ever signal a real process.
const MinSyntheticPID = 4194305

// AltField is one alt-username field of a 2.4 session, e.g. {"user_alt", "alice-alt"}.
type AltField struct{ Key, Value string }

// SyntheticSession is one anvil session that no process holds.
type SyntheticSession struct {
	User    string
	Service string     // imap, pop3, submission, imap-login, ...
	IP      netip.Addr // client IP; may be invalid (no IP) on 2.4 only
	PID     int        // >= MinSyntheticPID
	GUID    string     // 2.4: 32 lowercase hex digits; generated when empty
	DestIP  netip.Addr // 2.4 only: proxy destination (invalid = none)
	Alt     []AltField // 2.4 only
	// IPText and DestIPText, when set, are sent to anvil instead of IP and DestIP, verbatim:
	// to see how anvil and doveadm treat address text netip would normalize ("2001:DB8::A",
	// "fe80::2%1"). They are not validated; an address anvil cannot parse makes it drop the
	// connection.
	IPText, DestIPText string
}

// SyntheticConn is an anvil connection that registered synthetic sessions. The sessions stay
// registered after Close, until Disconnect or until the instance restarts.
type SyntheticConn struct {
	inst     *Instance
	c        net.Conn
	r        *bufio.Reader
	sessions []SyntheticSession
}

// BatchSize is how many CONNECT lines are sent between two round trips to anvil.
var BatchSize = 5000

// RegisterSynthetic connects to inst's anvil socket and registers sessions (see Register).
func RegisterSynthetic(ctx context.Context, inst *Instance, sessions []SyntheticSession) (*SyntheticConn, error) {
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "unix", inst.Anvil)
	if err != nil {
		return nil, fmt.Errorf("testrig: anvil %s: %w", inst.Anvil, err)
	}
	sc := &SyntheticConn{inst: inst, c: c, r: bufio.NewReaderSize(c, 4096)}
	if err := sc.handshake(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if err := sc.Register(ctx, sessions); err != nil {
		c.Close()
		return nil, err
	}
	return sc, nil
}

func (sc *SyntheticConn) handshake(ctx context.Context) error {
	defer sc.deadline(ctx)()
	if !sc.inst.Is24() {
		_, err := sc.c.Write([]byte("VERSION\tanvil\t1\t0\n"))
		return err
	}
	l, err := sc.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "VERSION\tanvil-server\t2\t") {
		return fmt.Errorf("testrig: anvil greeting %q: %v", l, err)
	}
	_, err = sc.c.Write([]byte("VERSION\tanvil-client\t2\t0\n\n"))
	return err
}

// deadline applies ctx to the socket (deadline and cancellation) until the returned func runs.
func (sc *SyntheticConn) deadline(ctx context.Context) func() bool {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(time.Minute)
	}
	sc.c.SetDeadline(d)
	return context.AfterFunc(ctx, func() { sc.c.SetDeadline(time.Unix(1, 0)) })
}

// Register sends CONNECT lines for sessions in batches of BatchSize, each followed by a LOOKUP
// round trip, so that on return anvil has processed them all. Empty GUIDs are filled in.
func (sc *SyntheticConn) Register(ctx context.Context, sessions []SyntheticSession) error {
	sessions = append([]SyntheticSession(nil), sessions...)
	lines := make([]string, len(sessions))
	for i := range sessions {
		s := &sessions[i]
		if s.GUID == "" && sc.inst.Is24() {
			s.GUID = NewGUID()
		}
		l, err := connectLine(sc.inst.Is24(), s)
		if err != nil {
			return fmt.Errorf("testrig: session %d (%q): %w", i, s.User, err)
		}
		lines[i] = l
	}
	if err := sc.send(ctx, lines); err != nil {
		return err
	}
	sc.sessions = append(sc.sessions, sessions...)
	return nil
}

// Disconnect sends DISCONNECT for every session this connection registered, waits until anvil
// has processed them, and closes the connection.
func (sc *SyntheticConn) Disconnect(ctx context.Context) error {
	lines := make([]string, len(sc.sessions))
	for i := range sc.sessions {
		s := &sc.sessions[i]
		if sc.inst.Is24() {
			lines[i] = strings.Join([]string{"DISCONNECT", s.GUID, strconv.Itoa(s.PID), TabEscape(s.User),
				TabEscape(s.Service), s.ipText()}, "\t") + "\n"
		} else {
			lines[i] = "DISCONNECT\t" + strconv.Itoa(s.PID) + "\t" + ident23(s) + "\n"
		}
	}
	err := sc.send(ctx, lines)
	sc.sessions = nil
	if cerr := sc.Close(); err == nil {
		err = cerr
	}
	return err
}

// Sessions returns the sessions registered so far (GUIDs filled in).
func (sc *SyntheticConn) Sessions() []SyntheticSession { return sc.sessions }

// Close closes the anvil connection; the sessions stay registered.
func (sc *SyntheticConn) Close() error { return sc.c.Close() }

func (sc *SyntheticConn) send(ctx context.Context, lines []string) error {
	defer sc.deadline(ctx)()
	w := bufio.NewWriterSize(sc.c, 256<<10)
	barrier := "LOOKUP\timap/127.0.0.1/kickagent-barrier\n"
	if sc.inst.Is24() {
		barrier = "LOOKUP\tkickagent-barrier\timap\t127.0.0.1\n"
	}
	for start := 0; start < len(lines); start += BatchSize {
		for _, l := range lines[start:min(start+BatchSize, len(lines))] {
			w.WriteString(l)
		}
		w.WriteString(barrier)
		if err := w.Flush(); err != nil {
			return fmt.Errorf("testrig: anvil write: %w", err)
		}
		if l, err := sc.r.ReadString('\n'); err != nil {
			return fmt.Errorf("testrig: anvil dropped the connection after line %d (see %s): %w", start, sc.inst.Log, err)
		} else if _, err := strconv.Atoi(strings.TrimSpace(l)); err != nil {
			return fmt.Errorf("testrig: unexpected anvil reply %q", l)
		}
	}
	return nil
}

func ipText(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.String()
}

// ipText is the client IP as sent to anvil.
func (s *SyntheticSession) ipText() string {
	if s.IPText != "" {
		return s.IPText
	}
	return ipText(s.IP)
}

// destIPText is the proxy destination as sent to anvil.
func (s *SyntheticSession) destIPText() string {
	if s.DestIPText != "" {
		return s.DestIPText
	}
	return ipText(s.DestIP)
}

func ident23(s *SyntheticSession) string {
	return TabEscape(s.Service + "/" + s.ipText() + "/" + s.User)
}

// connectLine builds the CONNECT line for one session and validates it.
func connectLine(v24 bool, s *SyntheticSession) (string, error) {
	if s.PID < MinSyntheticPID || s.PID > 1<<31-1 {
		return "", fmt.Errorf("pid %d outside [%d, 2^31-1]", s.PID, MinSyntheticPID)
	}
	if s.Service == "" || strings.ContainsAny(s.Service, "/\t\n\r\x01") {
		return "", fmt.Errorf("bad service %q", s.Service)
	}
	var l string
	if v24 {
		if len(s.GUID) != 32 || strings.Trim(s.GUID, "0123456789abcdef") != "" || strings.Trim(s.GUID, "0") == "" {
			return "", fmt.Errorf("bad GUID %q", s.GUID)
		}
		var alt []string
		for _, a := range s.Alt {
			alt = append(alt, TabEscape(a.Key), TabEscape(a.Value))
		}
		l = strings.Join([]string{"CONNECT", s.GUID, strconv.Itoa(s.PID), TabEscape(s.User), TabEscape(s.Service),
			s.ipText(), "N", s.destIPText(), TabEscape(strings.Join(alt, "\t"))}, "\t") + "\n"
	} else {
		if !s.IP.IsValid() && s.IPText == "" {
			return "", errors.New("2.3 sessions need a client IP")
		}
		if s.DestIP.IsValid() || s.DestIPText != "" || len(s.Alt) > 0 {
			return "", errors.New("2.3 anvil has no dest_ip or alt fields (use StripFor23)")
		}
		l = "CONNECT\t" + strconv.Itoa(s.PID) + "\t" + ident23(s) + "\n"
	}
	if len(l) > 1000 {
		return "", fmt.Errorf("CONNECT line of %d bytes exceeds anvil's 1024-byte input buffer", len(l))
	}
	return l, nil
}

// TabEscape escapes s as Dovecot's str_tabescape does (\x01 → \x01 1, \t → \x01 t,
// \r → \x01 r, \n → \x01 n, NUL → \x01 0).
func TabEscape(s string) string {
	if !strings.ContainsAny(s, "\x00\x01\t\r\n") {
		return s
	}
	// The project's own escaping: the wire format is one thing.
	return anvil.Escape(s)
}

// NewGUID returns a random connection GUID (32 lowercase hex digits).
func NewGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[0] |= 1 // never all zero
	return hex.EncodeToString(b[:])
}
