package authmaster

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Permission cannot be refused to root, who runs the tests: the mapping of
// connect's EACCES is tested on its own.
func TestDialErrorPermission(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth-master")
	err := dialError(path, &fs.PathError{Op: "dial", Path: path, Err: syscall.EACCES})
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "run as root") || !strings.Contains(err.Error(), path) {
		t.Errorf("%v", err)
	}
}

// Names go out with anvil.Escape (the same tab-escaping); here the exact
// bytes Dovecot expects of a CACHE-FLUSH name.
func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"alice":       "alice",
		"a\tb":        "a\x01tb",
		"\x01":        "\x011",
		"x\r\ny":      "x\x01r\x01ny",
		"\x01t":       "\x011t",
		"ünïcode@d.e": "ünïcode@d.e",
	} {
		if got := anvil.Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
