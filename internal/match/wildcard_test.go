package match

import (
	"strings"
	"testing"
)

func TestWildcard(t *testing.T) {
	tests := []struct {
		mask string
		yes  []string
		no   []string
	}{
		{"jan?", []string{"jane", "jano", "JANE", "jan?"}, []string{"james", "jan", "janes", ""}},
		{"*", []string{"", "a", "anything at all", "\x00\xff"}, nil},
		{"**", []string{"", "x"}, nil},
		{"", []string{""}, []string{"a", " "}},
		{"J*E", []string{"jane", "JE", "je", "jEEe", "joe"}, []string{"jan", "jane2", "ej"}},
		{"a*b*c", []string{"abc", "aXbYc", "abbbc", "a*b*c", "abcbc", "ABC"}, []string{"ab", "acb", "abcd", "xabc", "bc"}},
		{"*@example.com", []string{"alice@example.com", "@EXAMPLE.com"}, []string{"alice@example.org", "alice@example.com.au"}},
		{"?", []string{"a", "?", "*"}, []string{"", "ab"}},
		{"?*", []string{"a", "ab"}, []string{""}},
		{"*?", []string{"a", "ab"}, []string{""}},
		{"a?c", []string{"abc", "a?c", "a*c"}, []string{"ac", "abbc"}},
		// Only ASCII folds; other bytes compare exactly, and '?' is one byte.
		{"jürgen", []string{"jürgen", "JüRGEN"}, []string{"jÜrgen", "jurgen"}},
		{"j?rgen", []string{"jurgen"}, []string{"jürgen"}},
		{"j??rgen", []string{"jürgen"}, []string{"jurgen"}},
		{"\xe4*", []string{"\xe4", "\xe4bc"}, []string{"\xc4"}},
		// No escape character: a backslash is an ordinary byte.
		{`a\*`, []string{`a\`, `a\bc`}, []string{"a*", "a"}},
		{"[ab]", []string{"[AB]"}, []string{"a"}},
	}
	for _, tc := range tests {
		for _, s := range tc.yes {
			if !Wildcard(s, tc.mask) {
				t.Errorf("Wildcard(%q, %q) = false, want true", s, tc.mask)
			}
		}
		for _, s := range tc.no {
			if Wildcard(s, tc.mask) {
				t.Errorf("Wildcard(%q, %q) = true, want false", s, tc.mask)
			}
		}
	}
}

// Pathological masks must not take exponential time.
func TestWildcardLinearish(t *testing.T) {
	s := strings.Repeat("a", 10000)
	mask := strings.Repeat("*a", 50) + "b"
	if Wildcard(s, mask) {
		t.Fatal("matched")
	}
}

func TestHasWildcards(t *testing.T) {
	for s, want := range map[string]bool{"": false, "alice": false, "a*": true, "?": true, `a\b`: false} {
		if got := HasWildcards(s); got != want {
			t.Errorf("HasWildcards(%q) = %v", s, got)
		}
	}
}

// wildcardRef is the reference glob for FuzzWildcard: a plain dynamic
// program over bytes with ASCII case folding.
func wildcardRef(s, mask string) bool {
	fold := func(c byte) byte {
		if 'a' <= c && c <= 'z' {
			return c - 32
		}
		return c
	}
	// m[j] reports whether s[:i] matches mask[:j], for the current i.
	m := make([]bool, len(mask)+1)
	m[0] = true
	for j := 1; j <= len(mask) && mask[j-1] == '*'; j++ {
		m[j] = true
	}
	for i := 1; i <= len(s); i++ {
		prev := m[0] // s[:i-1] vs mask[:j-1]
		m[0] = false
		for j := 1; j <= len(mask); j++ {
			cur := m[j]
			switch c := mask[j-1]; {
			case c == '*':
				m[j] = m[j-1] || m[j] // empty run, or one more byte
			case c == '?' || fold(c) == fold(s[i-1]):
				m[j] = prev
			default:
				m[j] = false
			}
			prev = cur
		}
	}
	return m[len(mask)]
}

func TestWildcardRef(t *testing.T) {
	for _, c := range [][3]string{{"jane", "jan?", "1"}, {"", "*", "1"}, {"", "", "1"}, {"a", "", ""}, {"abc", "a*c", "1"}, {"ab", "a*c", ""}, {"JANE", "j*e", "1"}} {
		if got := wildcardRef(c[0], c[1]); got != (c[2] == "1") {
			t.Errorf("wildcardRef(%q, %q) = %v", c[0], c[1], got)
		}
	}
}

func FuzzWildcard(f *testing.F) {
	f.Add("jane", "jan?")                 // '?' is one byte
	f.Add("james", "jan?")                // no match
	f.Add("", "")                         // empty matches empty
	f.Add("", "*")                        // empty matches '*'
	f.Add("", "?")                        // but not '?'
	f.Add("aXbYc", "a*b*c")               // several stars, backtracking
	f.Add("abcbc", "a*bc")                // the star must give back bytes
	f.Add("JANE", "j*e")                  // ASCII case folding
	f.Add("jürgen", "j??rgen")            // multi-byte rune is two bytes for '?'
	f.Add("\xff\x00", "*\x00")            // arbitrary bytes
	f.Add("aaaaaaaaaaaaab", "*a*a*a*a*c") // many backtracks
	f.Fuzz(func(t *testing.T, s, mask string) {
		got := Wildcard(s, mask)
		if want := wildcardRef(s, mask); got != want {
			t.Fatalf("Wildcard(%q, %q) = %v, reference says %v", s, mask, got, want)
		}
		if !Wildcard(s, "*") {
			t.Fatalf("Wildcard(%q, \"*\") = false", s)
		}
		// A string matches itself as a mask: its own '*' and '?' match
		// themselves, among others.
		if !Wildcard(s, s) {
			t.Fatalf("Wildcard(%q, itself) = false", s)
		}
		if isASCII(s) && isASCII(mask) && Wildcard(s, strings.ToUpper(mask)) != Wildcard(strings.ToLower(s), mask) {
			t.Fatalf("ASCII case folding differs for %q, %q", s, mask)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
