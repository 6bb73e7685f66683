package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		perConn bool
		socket  string
		err     error // nil, flag.ErrHelp, or errAny
	}{
		{args: nil, pos: nil},
		{args: []string{"alice"}, pos: []string{"alice"}},
		{args: []string{"alice", "-1", "-a", "/x/anvil"}, pos: []string{"alice"}, perConn: true, socket: "/x/anvil"},
		{args: []string{"-1", "alice", "10.0.0.0/8", "-a=/y"}, pos: []string{"alice", "10.0.0.0/8"}, perConn: true, socket: "/y"},
		{args: []string{"a", "b", "-1", "c"}, pos: []string{"a", "b", "c"}, perConn: true},
		{args: []string{"--", "-1"}, pos: []string{"-1"}},
		{args: []string{"alice", "--", "-weird", "-1"}, pos: []string{"alice", "-weird", "-1"}},
		{args: []string{"-1", "--"}, pos: nil, perConn: true},
		{args: []string{"--", "--"}, pos: []string{"--"}},
		{args: []string{"-", "-1"}, pos: []string{"-"}, perConn: true}, // a lone "-" is an argument
		{args: []string{"alice", "-nope"}, err: errAny},
		{args: []string{"alice", "-a"}, err: errAny}, // flag without its value
		{args: []string{"alice", "-h"}, err: flag.ErrHelp},
	}
	for _, tc := range tests {
		fs := newFlagSet("who", "help\n", io.Discard)
		var af anvilFlags
		af.register(fs)
		perConn := fs.Bool("1", false, "")
		pos, err := parseArgs(fs, tc.args)
		switch {
		case tc.err == errAny:
			if err == nil {
				t.Errorf("parseArgs(%q): no error", tc.args)
			}
			continue
		case tc.err != nil:
			if !errors.Is(err, tc.err) {
				t.Errorf("parseArgs(%q): err %v, want %v", tc.args, err, tc.err)
			}
			continue
		case err != nil:
			t.Errorf("parseArgs(%q): %v", tc.args, err)
			continue
		}
		if !slices.Equal(pos, tc.pos) || *perConn != tc.perConn {
			t.Errorf("parseArgs(%q) = %q, -1=%v; want %q, -1=%v", tc.args, pos, *perConn, tc.pos, tc.perConn)
		}
		// An unset -a stays empty: the config's socket, else anvil's default, applies.
		want := tc.socket
		if af.socket != want {
			t.Errorf("parseArgs(%q): -a %q, want %q", tc.args, af.socket, want)
		}
	}
}

var errAny = errors.New("any error")
