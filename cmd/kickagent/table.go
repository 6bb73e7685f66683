package main

import (
	"io"
	"strings"
	"unicode/utf8"
)

// maxPadWidth caps the width a column is padded to.
const maxPadWidth = 64

// table prints aligned columns like doveadm's table formatter, but never
// truncates a value to the terminal width, and left-aligns every column so
// that each starts where its title does (scripts can cut by the header).
type table struct {
	titles []string
	rows   [][]string
}

func newTable(titles ...string) *table {
	return &table{titles: titles}
}

func (t *table) add(row ...string) { t.rows = append(t.rows, row) }

func (t *table) write(w io.Writer) error {
	width := make([]int, len(t.titles))
	// A cell wider than maxPadWidth (a user's list of a thousand pids)
	// extends its line instead of padding the whole column to its width.
	measure := func(row []string) {
		for i, v := range row {
			if n := utf8.RuneCountInString(v); n <= maxPadWidth {
				width[i] = max(width[i], n)
			}
		}
	}
	measure(t.titles)
	for _, r := range t.rows {
		measure(r)
	}
	var b strings.Builder
	line := func(row []string) {
		b.Reset()
		for i, v := range row {
			pad := strings.Repeat(" ", max(width[i]-utf8.RuneCountInString(v), 0))
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(v)
			if i < len(row)-1 {
				b.WriteString(pad)
			}
		}
	}
	emit := func(row []string) error {
		line(row)
		// Empty trailing cells (absent alt fields) leave no trailing blanks.
		_, err := io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n")
		return err
	}
	if err := emit(t.titles); err != nil {
		return err
	}
	for _, r := range t.rows {
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}
