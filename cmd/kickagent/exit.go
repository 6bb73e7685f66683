package main

import (
	"fmt"
	"strings"
)

// Exit codes: the one table of them. They follow sysexits.h where one
// fits, as doveadm's do, so that scripts treat kickagent like doveadm.
// Failures of the operation itself are 1, not 70 (EX_SOFTWARE): they are
// I/O and refused operations, not bugs in kickagent, and 1 is what
// test-policy (like go test) and existing scripts already see.
//
// The usage texts list codes with exitStatus and README.md has the table
// as exitMarkdown renders it (TestExitCodesDocumented); no other file
// spells a code.
const (
	exitOK       = 0
	exitFailure  = 1
	exitPartial  = 2
	exitUsage    = 64 // EX_USAGE
	exitNotFound = 68 // EX_NOHOST: doveadm's "no users kicked"
	exitTempFail = 75 // EX_TEMPFAIL
	exitConfig   = 78 // EX_CONFIG
)

// exitCodes says what each code means, in the order documented.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{exitOK, "success"},
	{exitFailure, "the operation failed: output or a file could not be written or removed, the agent stopped on an error; test-policy: a test failed, none was found or the policy did not load"},
	{exitPartial, "kick: sessions matched but not all were kicked (refused for collateral, still connected, failed); reset: the reset is installed but the auth cache was not flushed, so the old password may still log in"},
	{exitUsage, "usage: a bad flag or argument, such as a network literal the parser refuses"},
	{exitNotFound, "nothing matched: kick selected no session; unblock or drain --cancel found no such job"},
	{exitTempFail, "anvil unreachable or its reply malformed, or the snapshot file unreadable; try again later"},
	{exitConfig, "configuration: the config file (a -c that was given) cannot be read or holds a bad setting (file:line), rules or policies cannot be read or do not load, or a job would not load with them"},
}

// exitStatus is the "Exit status:" paragraph of a usage text: codes, or
// every code when none is given.
func exitStatus(codes ...int) string {
	var b strings.Builder
	b.WriteString("\nExit status:\n")
	for _, e := range exitCodes {
		if len(codes) > 0 && !contains(codes, e.code) {
			continue
		}
		line := fmt.Sprintf("  %-3d ", e.code)
		for i, w := range strings.Fields(e.meaning) {
			if i > 0 && len(line)+1+len(w) > 78 {
				b.WriteString(line + "\n")
				line = "      " + w
				continue
			}
			if i > 0 {
				line += " "
			}
			line += w
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// exitMarkdown is the table README.md carries.
func exitMarkdown() string {
	var b strings.Builder
	b.WriteString("| Exit status | Meaning |\n|---|---|\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "| %d | %s |\n", e.code, e.meaning)
	}
	return b.String()
}

func contains(codes []int, c int) bool {
	for _, x := range codes {
		if x == c {
			return true
		}
	}
	return false
}
