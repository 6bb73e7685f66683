package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Kind is the job a managed file belongs to.
type Kind string

// Job kinds; the file name starts with "kickagent-<kind>-".
const (
	Block Kind = "block"
	Reset Kind = "reset"
	Drain Kind = "drain"
)

// FileName returns the managed file name for a job on target.
func FileName(kind Kind, target string) string {
	sum := sha256.Sum256([]byte(target))
	return fmt.Sprintf("kickagent-%s-%s-%s.yaml", kind, slug(target), hex.EncodeToString(sum[:4]))
}

// RuleName is the rule's name: stable per kind and target, so that a job
// is replaced, not duplicated, when it is run again.
func RuleName(kind Kind, target string) string {
	return strings.TrimSuffix(FileName(kind, target), ".yaml")
}

// KindOf tells whether a file name is a managed drop-in, and its kind.
// Only such files are ever replaced or deleted by jobs or the agent; the
// agent also wants the job's header and one rule (Dir.End), since a name
// alone can be given by hand.
func KindOf(name string) (Kind, bool) {
	for _, k := range []Kind{Block, Reset, Drain} {
		if strings.HasPrefix(name, "kickagent-"+string(k)+"-") && strings.HasSuffix(name, ".yaml") {
			return k, true
		}
	}
	return "", false
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if b.Len() >= 40 {
			break // the hash suffix keeps long targets apart
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
