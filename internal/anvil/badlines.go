package anvil

import (
	"fmt"
	"strings"
)

// Kinds of malformed session lines (BadLine.Kind): a small fixed set, fit
// for a metric label.
const (
	BadFields     = "fields"      // too few or too many fields (an empty line has none)
	BadAltColumns = "alt_columns" // more alt columns than the 2.4 header names
	BadPID        = "pid"         // not a positive decimal number
	BadRefcount   = "refcount"    // 2.3: not a decimal number below 2^31
	BadIdent      = "ident"       // 2.3: the ident is not service/ip/user
	BadService    = "service"     // 2.4: empty service
	BadGUID       = "guid"        // 2.4: the connection GUID is not 32 hex digits
	BadClientIP   = "client_ip"   // not an IP (see parseAddr for zones)
	BadDestIP     = "dest_ip"     // 2.4: not an IP
	// BadLineTooLong: longer than Limits.MaxLineBytes; read past, not kept.
	BadLineTooLong = "line_too_long"
)

// BadKinds lists every BadLine.Kind, for metrics that want each series to
// exist from the start.
var BadKinds = []string{BadFields, BadAltColumns, BadPID, BadRefcount, BadIdent, BadService,
	BadGUID, BadClientIP, BadDestIP, BadLineTooLong}

// BadLine is one kind of malformed session line met in a dump, with the
// first line of that kind as its example.
type BadLine struct {
	Kind   string // one of the Bad* constants
	Reason string // why the example was skipped, e.g. "bad client ip"
	Line   int    // 1-based line of the example in the reply (a 2.4 header is line 1)
	Text   string // the example line, cut to 120 bytes ("…" marks a cut)
	Count  int    // lines of this kind skipped
}

// BadLines records the session lines of a dump that were malformed and
// skipped. One bad line never fails a whole dump: the other sessions are
// parsed, and the bad one is counted here. A reply that cannot be read
// as a dump at all (EOF before the terminator, a bad 2.4 header, a
// version mismatch) is still an error.
type BadLines struct {
	Count    int       // lines skipped
	Problems []BadLine // one per Kind, in the order first met
}

// String describes the problems on one line, e.g. `1 malformed anvil
// line(s) skipped: line 17: bad client ip "…"`; "" when there is none.
func (b BadLines) String() string {
	if b.Count == 0 {
		return ""
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "skipped %d malformed anvil line(s)", b.Count)
	for i, p := range b.Problems {
		sep := ": "
		if i > 0 {
			sep = "; "
		}
		fmt.Fprintf(&sb, "%s%s", sep, p.String())
	}
	return sb.String()
}

// String describes p: `line 17: bad client ip "…"`, and how many lines of
// its kind there were when more than one.
func (p BadLine) String() string {
	s := fmt.Sprintf("line %d: %s %q", p.Line, p.Reason, p.Text)
	if p.Count > 1 {
		s += fmt.Sprintf(" (and %d more like it)", p.Count-1)
	}
	return s
}

// add counts a skipped line; text may be in a reused buffer.
func (b *BadLines) add(line int, text, reason string) {
	b.Count++
	kind := badKind(reason)
	for i := range b.Problems {
		if b.Problems[i].Kind == kind {
			b.Problems[i].Count++
			return
		}
	}
	b.Problems = append(b.Problems, BadLine{Kind: kind, Reason: reason, Line: line, Text: shorten(text), Count: 1})
}

// maxBadText is how much of a bad line a report keeps.
const maxBadText = 120

// shorten cuts a line for an error or a report and copies it out of
// whatever buffer it is in.
func shorten(text string) string {
	if len(text) > maxBadText {
		return strings.Clone(text[:maxBadText]) + "…"
	}
	return strings.Clone(text)
}

// badKind classifies the reasons parseSession23, parseSession24 and
// dumpParser.general give.
func badKind(reason string) string {
	switch {
	case reason == "bad pid":
		return BadPID
	case reason == "bad refcount":
		return BadRefcount
	case reason == "ident is not service/ip/user":
		return BadIdent
	case reason == "empty service":
		return BadService
	case reason == "bad connection guid":
		return BadGUID
	case reason == "bad client ip":
		return BadClientIP
	case reason == "bad dest ip":
		return BadDestIP
	case strings.Contains(reason, "alt columns"):
		return BadAltColumns
	case strings.HasPrefix(reason, "line longer than"):
		return BadLineTooLong
	}
	return BadFields
}
