package engine

import (
	"fmt"
	"io"
	"os"
)

// Size limits of what a load reads. A rules file or policy far larger than
// any real one (a log or a dump written there by mistake, a runaway
// generator) would take seconds and gigabytes to compile; it is refused
// with an error naming it instead. The largest real rule sets seen are
// well under a megabyte.
const (
	// DefaultMaxRulesFileBytes bounds one YAML rules file (main or
	// drop-in): about 40,000 rules.
	DefaultMaxRulesFileBytes = 4 << 20
	// DefaultMaxPolicyBytes bounds the .rego files of one policy path,
	// together.
	DefaultMaxPolicyBytes = 4 << 20
)

func (s Sources) maxFile() int64 {
	if s.MaxRulesFileBytes > 0 {
		return s.MaxRulesFileBytes
	}
	return DefaultMaxRulesFileBytes
}

func (s Sources) maxPolicy() int64 {
	if s.MaxPolicyBytes > 0 {
		return s.MaxPolicyBytes
	}
	return DefaultMaxPolicyBytes
}

// tooBig is the error of a file or policy over its limit.
func tooBig(path, what string, size, limit int64) *Error {
	return &Error{File: path, Msg: fmt.Sprintf("%s of %d bytes is over the limit of %d bytes (%d MiB); refused", what, size, limit, limit>>20)}
}

// read returns a rules file's content, staged or on disk, refusing one
// over the limit without reading it all.
func (s Sources) read(path string) ([]byte, *Error) {
	limit := s.maxFile()
	if data, ok := s.Staged[path]; ok {
		if int64(len(data)) > limit {
			return nil, tooBig(path, "rules file", int64(len(data)), limit)
		}
		return data, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > limit {
		return nil, tooBig(path, "rules file", st.Size(), limit)
	}
	// Bounded too: the file may grow after the Stat.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}
	}
	if int64(len(data)) > limit {
		return nil, tooBig(path, "rules file", int64(len(data)), limit)
	}
	return data, nil
}

// checkPolicySize refuses a policy path whose .rego files are over the
// limit together, before OPA parses any of them. Problems listing the
// files are left to LoadPolicy, which reports them.
func (s Sources) checkPolicySize() *Error {
	limit := s.maxPolicy()
	for _, root := range s.Policies {
		files, _ := policyFiles([]string{root}, false)
		var total int64
		for _, f := range files {
			if st, err := os.Stat(f); err == nil {
				total += st.Size()
			}
		}
		if total > limit {
			return tooBig(root, "policy (.rego files together)", total, limit)
		}
	}
	if b := s.Bundle; b != nil {
		var total int64
		for _, m := range b.Modules {
			total += int64(len(m.Data))
		}
		if total > limit {
			return tooBig("bundle:"+b.Revision, "policy (.rego modules together)", total, limit)
		}
	}
	return nil
}
