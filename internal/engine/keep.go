package engine

// Rejected returns the problems of the drop-in files LoadKeeping did not
// load as they are on disk (each left out or kept at its last good
// version, see Kept), with file and line; nil after Load.
func (rs *Ruleset) Rejected() Errors { return rs.rejected }

// Kept returns the drop-in files with errors whose last good version is
// loaded instead.
func (rs *Ruleset) Kept() []string { return rs.kept }

// dropIn returns the content of drop-in file f as rs loaded it.
func (rs *Ruleset) dropIn(f string) ([]byte, bool) {
	if rs == nil {
		return nil, false
	}
	data, ok := rs.dropIns[f]
	return data, ok
}
