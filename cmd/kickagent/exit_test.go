package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestExitCodesDocumented: README.md carries the exit table as exitCodes
// says, kickagent -h lists every code, and no other file of the command
// defines or spells an exit code, so the table stays the only one.
func TestExitCodesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), exitMarkdown()) {
		t.Errorf("README.md lacks the exit table; put in:\n%s", exitMarkdown())
	}
	if !strings.HasSuffix(usage, exitStatus()) {
		t.Error("kickagent -h does not end with every exit code")
	}
	files, _ := filepath.Glob("*.go")
	def := regexp.MustCompile(`\bexit[A-Z]\w*\s*=\s*[0-9]`)
	spelled := regexp.MustCompile(`(?i)\bexit(s|s with| status:?| code)?\s+\(?[0-9]`)
	for _, f := range files {
		if f == "exit.go" || strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := def.Find(data); m != nil {
			t.Errorf("%s defines an exit code (%s): use exit.go", f, m)
		}
		if m := spelled.Find(data); m != nil {
			t.Errorf("%s spells an exit code (%s): use exitStatus", f, m)
		}
	}
}
