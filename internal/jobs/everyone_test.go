package jobs

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestBlockEveryone(t *testing.T) {
	until := time.Now().Add(time.Hour)
	for arg, want := range map[string]bool{
		"*": true, "**": true, "?*": true, "*?": true, "0.0.0.0/0": true, "::/0": true,
		"???": false, "a*": false, "*@example.com": false, "0.0.0.0/1": false, "10.0.0.0/8": false, "alice": false,
	} {
		j, err := NewBlock(arg, until, "")
		if err != nil {
			t.Fatalf("%q: %v", arg, err)
		}
		if got := j.Everyone(); got != want {
			t.Errorf("%q (%s): Everyone() = %v, want %v", arg, j.ReadAs(), got, want)
		}
	}
}

func TestBlockReadAs(t *testing.T) {
	until := time.Now().Add(time.Hour)
	for arg, want := range map[string]string{
		"example.com":  "user mask example.com",
		"192.0.2.7/24": "network 192.0.2.0/24",
		"jan?":         "user mask jan?",
	} {
		j, err := NewBlock(arg, until, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := j.ReadAs(); got != want {
			t.Errorf("%q read as %q, want %q", arg, got, want)
		}
	}
	for arg, want := range map[string]bool{
		"example.com": true, "mail.example.com": true, "alice": false, "alice@example.com": false,
		"*.example.com": false, "john.doe": true, "12345": false, "a.": false,
	} {
		j, err := NewBlock(arg, until, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := j.LooksLikeHost(); got != want {
			t.Errorf("%q: LooksLikeHost() = %v, want %v", arg, got, want)
		}
	}
}

// User masks match ASCII case-insensitively, so unblock finds a block of
// the same mask in another case, and only that one.
func TestUnblockFoldsCase(t *testing.T) {
	d := Dir{Path: filepath.Join(t.TempDir(), "rules.d")}
	for _, m := range []string{"ALICE*", "alice?", "bob*"} {
		j, err := NewBlock(m, time.Now().Add(time.Hour), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(d.Path, 0o750); err != nil {
			t.Fatal(err)
		}
		data, err := render(j, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.Path, FileName(j.Kind, j.Target)), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := d.Unblock("alice*")
	if err != nil || len(removed) != 1 || filepath.Base(removed[0]) != FileName(Block, "ALICE*") {
		t.Fatalf("unblock alice*: removed %v, %v; want the ALICE* block only", removed, err)
	}
	left, _ := d.List(Block)
	if len(left) != 2 {
		t.Errorf("left %d blocks, want alice? and bob*", len(left))
	}
}
