package procfs

import (
	"errors"
	"os"
	"runtime"
	"testing"
)

func TestParseStat(t *testing.T) {
	line := "4242 (imap-login (x)) S 17 4242 4242 0 -1 4194560 300 0 0 0 7 5 0 0 20 0 1 0 100 1000 200\n"
	st, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stat{Comm: "imap-login (x)", PPid: 17, Ticks: 12}) {
		t.Errorf("ParseStat = %+v", st)
	}
	if st, err := ParseStat([]byte("4242 (imap) S 17")); err != nil || st.PPid != 17 || st.Ticks != -1 {
		t.Errorf("short line: %+v, %v; want ppid 17, ticks -1", st, err)
	}
	for _, bad := range []string{"", "4242 imap S 1", "4242 (imap) S", "4242 (imap) S x", "4242 (imap) S 1 4242 4242 0 -1 0 0 0 0 0 x 5"} {
		if _, err := ParseStat([]byte(bad)); !errors.Is(err, ErrUnreadable) {
			t.Errorf("ParseStat(%q) = %v, want ErrUnreadable", bad, err)
		}
	}
}

func TestReadStatSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no /proc on", runtime.GOOS)
	}
	st, err := ReadStat("", int64(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if st.PPid != int64(os.Getppid()) {
		t.Errorf("ppid %d, want %d", st.PPid, os.Getppid())
	}
}
