package authmaster

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseFlushReply: any line the server sends either fails or is an OK
// reply to request 1 whose count is the third field.
func FuzzParseFlushReply(f *testing.F) {
	f.Add("OK\t1\t3")          // the usual reply
	f.Add("OK\t1\t0\textra")   // a future field, ignored
	f.Add("OK\t2\t3")          // another request's reply
	f.Add("FAIL\t1")           // a failure
	f.Add("OK\t1\t-1")         // a sign
	f.Add("OK\t1\t4294967296") // over 32 bits
	f.Add("")                  // an empty line
	f.Add("OK\t1\t\x01t")      // an escape where the count goes
	f.Fuzz(func(t *testing.T, line string) {
		n, err := parseFlushReply(line, 1)
		if err != nil {
			return
		}
		fields := strings.Split(line, "\t")
		if fields[0] != "OK" || fields[1] != "1" || n < 0 {
			t.Fatalf("%q accepted as %d", line, n)
		}
		if m, perr := strconv.ParseUint(fields[2], 10, 32); perr != nil || int(m) != n {
			t.Fatalf("%q: count %d, field %q", line, n, fields[2])
		}
	})
}
