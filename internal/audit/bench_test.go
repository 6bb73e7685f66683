package audit

import (
	"path/filepath"
	"testing"
)

// BenchmarkWrite is one record written to a file: one write(2) of the
// whole line.
func BenchmarkWrite(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r := rec("someone@example.com")
	r.Reason = "network 192.0.2.0/24 is blocked"
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Write(r); err != nil {
			b.Fatal(err)
		}
	}
}
