package match

// Wildcard reports whether s matches mask the way Dovecot's
// wildcard_match_icase does: '*' matches any run of bytes (including none),
// '?' exactly one byte, everything else compares ASCII case-insensitively.
// There is no escape character. An empty s matches only a mask made of '*'
// alone (or an empty mask).
func Wildcard(s, mask string) bool {
	// Iterative glob with one backtrack point: linear in practice, and never
	// worse than O(len(s)*len(mask)).
	var si, mi int
	star, starS := -1, 0
	for si < len(s) {
		if mi < len(mask) {
			switch c := mask[mi]; {
			case c == '*':
				star, starS = mi, si
				mi++
				continue
			case c == '?' || foldASCII(c) == foldASCII(s[si]):
				si++
				mi++
				continue
			}
		}
		if star < 0 {
			return false
		}
		starS++
		si, mi = starS, star+1
	}
	for mi < len(mask) && mask[mi] == '*' {
		mi++
	}
	return mi == len(mask)
}

// HasWildcards reports whether mask contains '*' or '?'.
func HasWildcards(mask string) bool {
	for i := 0; i < len(mask); i++ {
		if mask[i] == '*' || mask[i] == '?' {
			return true
		}
	}
	return false
}

func foldASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}
