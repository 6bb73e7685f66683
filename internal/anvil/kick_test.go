package anvil_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// crafted is a username that, sent raw, would end the KICK-USER line and
// start a second command (KICK-USER of everyone's "bob", then a dump).
const crafted = "alice\tx\nKICK-USER\tbob\r\nCONNECT-DUMP\n\x01"

func TestFormatCommandEscapesFields(t *testing.T) {
	line, err := anvil.FormatCommand("KICK-USER", crafted, guidA)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("FormatCommand = %q: want exactly one line", line)
	}
	if strings.ContainsAny(strings.TrimSuffix(line, "\n"), "\r\n") {
		t.Fatalf("FormatCommand = %q: raw CR or LF inside the line", line)
	}
	f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
	if len(f) != 3 {
		t.Fatalf("FormatCommand = %q: %d fields, want 3", line, len(f))
	}
	if got := anvil.Unescape(f[1]); got != crafted {
		t.Errorf("user field unescapes to %q, want %q", got, crafted)
	}
	want := "alice\x01tx\x01nKICK-USER\x01tbob\x01r\x01nCONNECT-DUMP\x01n\x011"
	if f[1] != want {
		t.Errorf("user field %q, want %q", f[1], want)
	}
}

func TestFormatCommandLineLimit(t *testing.T) {
	// 1024 bytes with the LF is the most anvil reads.
	if _, err := anvil.FormatCommand("KICK-USER", strings.Repeat("a", 1024-len("KICK-USER\t\n"))); err != nil {
		t.Errorf("1024-byte line refused: %v", err)
	}
	if _, err := anvil.FormatCommand("KICK-USER", strings.Repeat("a", 1025-len("KICK-USER\t\n"))); err == nil {
		t.Error("1025-byte line accepted")
	}
	// Escaping counts: 400 TABs become 800 bytes.
	if _, err := anvil.FormatCommand("KICK-USER", strings.Repeat("\t", 600)); err == nil {
		t.Error("line over the limit after escaping accepted")
	}
}

// TestKickUserCannotInject sends a crafted user to a fake 2.4 anvil: the
// fake must see exactly the handshake and one KICK-USER line carrying the
// escaped user, and the connection must stay usable.
func TestKickUserCannotInject(t *testing.T) {
	for _, guid := range []string{"", guidA} {
		srv := anviltest.New(t, anvil.Proto24, anviltest.WithReply("KICK-USER", "1\n"))
		ctx := testCtx(t, 10*time.Second)
		c, err := (&anvil.Client{Path: srv.Path}).Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := c.KickUser(ctx, crafted, guid)
		if err != nil || n != 1 {
			t.Fatalf("KickUser = %d, %v; want 1", n, err)
		}
		// A second command on the same connection gets its own reply: no
		// injected command left a reply in between.
		if _, err := c.Dump(ctx); err != nil {
			t.Fatalf("dump after kick: %v", err)
		}
		c.Close()
		kick := "KICK-USER\talice\x01tx\x01nKICK-USER\x01tbob\x01r\x01nCONNECT-DUMP\x01n\x011"
		if guid != "" {
			kick += "\t" + guid
		}
		want := []string{anviltest.Handshake24, "", kick, "CONNECT-DUMP"}
		if got := srv.Lines(); !slices.Equal(got, want) {
			t.Errorf("guid %q: server received %q, want %q", guid, got, want)
		}
	}
}

func TestKickAltUserCannotInject(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto24)
	ctx := testCtx(t, 10*time.Second)
	c, err := (&anvil.Client{Path: srv.Path}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.KickAltUser(ctx, "user_alt\tx", crafted, "127.0.0.1\n"); err != nil {
		t.Fatal(err)
	}
	lines := srv.Lines()
	if len(lines) != 3 {
		t.Fatalf("server received %q, want handshake and one command", lines)
	}
	f := strings.Split(lines[2], "\t")
	if len(f) != 4 || f[0] != "KICK-ALT-USER" || anvil.Unescape(f[1]) != "user_alt\tx" ||
		anvil.Unescape(f[2]) != crafted || anvil.Unescape(f[3]) != "127.0.0.1\n" {
		t.Errorf("KICK-ALT-USER line %q", lines[2])
	}
}

func TestKickUserRefusesBadGUID(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto24)
	ctx := testCtx(t, 10*time.Second)
	c, err := (&anvil.Client{Path: srv.Path}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, g := range []string{"x", guidA + "\n" + "KICK-USER\tbob", strings.Repeat("g", 32)} {
		if _, err := c.KickUser(ctx, "alice", g); err == nil {
			t.Errorf("guid %q accepted", g)
		}
	}
	// The dump's reply proves the server has read everything sent before.
	if _, err := c.Dump(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Lines(), []string{anviltest.Handshake24, "", "CONNECT-DUMP"}; !slices.Equal(got, want) {
		t.Errorf("server received %q, want %q", got, want)
	}
}

func TestKickUserOn23NotSupported(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto23)
	ctx := testCtx(t, 10*time.Second)
	c, err := (&anvil.Client{Path: srv.Path, Protocol: anvil.Proto23}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.KickUser(ctx, "alice", ""); !errors.Is(err, anvil.ErrNotSupported) {
		t.Errorf("KickUser on 2.3: %v, want ErrNotSupported", err)
	}
	if _, err := c.Dump(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Lines(), []string{anviltest.Handshake23, "CONNECT-DUMP"}; !slices.Equal(got, want) {
		t.Errorf("server received %q, want %q", got, want)
	}
}

func TestKickUserBadReply(t *testing.T) {
	for _, reply := range []string{"-1\n", "x\n"} {
		srv := anviltest.New(t, anvil.Proto24, anviltest.WithReply("KICK-USER", reply))
		ctx := testCtx(t, 10*time.Second)
		c, err := (&anvil.Client{Path: srv.Path}).Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.KickUser(ctx, "alice", ""); err == nil {
			t.Errorf("reply %q accepted", reply)
		}
		c.Close()
	}
}

// TestOpenKicker: the extra kick connection is a second handshaken
// connection to the same anvil, speaking the detected protocol (a 2.3
// one still refuses KICK-USER).
func TestOpenKicker(t *testing.T) {
	for _, proto := range []anvil.Protocol{anvil.Proto24, anvil.Proto23} {
		srv := anviltest.New(t, proto, anviltest.WithReply("KICK-USER", "1\n"))
		ctx := testCtx(t, 10*time.Second)
		c, err := (&anvil.Client{Path: srv.Path, Protocol: proto}).Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		k, err := c.OpenKicker(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := k.KickUser(ctx, "alice", guidA)
		if proto == anvil.Proto23 {
			if !errors.Is(err, anvil.ErrNotSupported) {
				t.Errorf("2.3 kicker: %v, want ErrNotSupported", err)
			}
		} else if err != nil || n != 1 {
			t.Errorf("KickUser = %d, %v; want 1", n, err)
		}
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Dump(ctx); err != nil {
			t.Fatalf("first connection after the kicker: %v", err)
		}
		if srv.Conns() != 2 {
			t.Errorf("%v: %d connections, want 2", proto, srv.Conns())
		}
		if proto == anvil.Proto24 {
			if got, want := srv.ConnLines(1), []string{anviltest.Handshake24, "", "KICK-USER\talice\t" + guidA}; !slices.Equal(got, want) {
				t.Errorf("kicker sent %q, want %q", got, want)
			}
		}
	}
}
