package main

import "io"

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
			if n := textWidth(v); n <= maxPadWidth {
				width[i] = max(width[i], n)
			}
		}
	}
	measure(t.titles)
	for _, r := range t.rows {
		measure(r)
	}
	var b []byte // one line, reused: 40,000 rows make no garbage
	emit := func(row []string) error {
		b = b[:0]
		for i, v := range row {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, v...)
			if i < len(row)-1 {
				for n := textWidth(v); n < width[i]; n++ {
					b = append(b, ' ')
				}
			}
		}
		// Empty trailing cells (absent alt fields) leave no trailing blanks.
		for len(b) > 0 && b[len(b)-1] == ' ' {
			b = b[:len(b)-1]
		}
		_, err := w.Write(append(b, '\n'))
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
