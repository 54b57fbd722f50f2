package cli

import (
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/width"

	"pixelrelay/config"
)

// table is aligned text output: a header row and rows of cells. Columns
// marked flexible are cut (with "…") so the whole line fits the terminal.
type table struct {
	header []string
	rows   [][]string
	// flex maps a column index to the narrowest it may be cut to.
	flex map[int]int
	// paint, when set, may wrap a data cell (already cut) in terminal
	// colour codes; alignment is computed on the plain text.
	paint func(col int, cell string) string
}

const colGap = 2

// add appends a row; every cell is made safe to print (see clean).
func (t *table) add(cells ...string) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = clean(c)
	}
	t.rows = append(t.rows, row)
}

// render lays the table out for a terminal maxWidth columns wide (0: no
// limit, nothing is cut). Lines carry no trailing spaces.
func (t *table) render(maxWidth int) string {
	all := append([][]string{t.header}, t.rows...)
	widths := columnWidths(all)
	if maxWidth > 0 {
		t.shrink(widths, maxWidth)
	}
	var b strings.Builder
	for i, row := range all {
		var paint func(int, string) string
		if i > 0 {
			paint = t.paint
		}
		writeRow(&b, row, widths, paint)
	}
	return b.String()
}

// shrink narrows the flexible columns, widest first, until a line fits
// maxWidth or every flexible column is at its minimum.
func (t *table) shrink(widths []int, maxWidth int) {
	total := (len(widths) - 1) * colGap
	for _, w := range widths {
		total += w
	}
	for total > maxWidth {
		best := -1
		for i, w := range widths {
			m, ok := t.flex[i]
			if ok && w > m && (best < 0 || w > widths[best]) {
				best = i
			}
		}
		if best < 0 {
			return
		}
		widths[best]--
		total--
	}
}

func columnWidths(rows [][]string) []int {
	n := 0
	for _, r := range rows {
		n = max(n, len(r))
	}
	widths := make([]int, n)
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], textWidth(c))
		}
	}
	return widths
}

func writeRow(b *strings.Builder, row []string, widths []int, paint func(int, string) string) {
	var line strings.Builder
	for i, c := range row {
		if i > 0 {
			line.WriteString(strings.Repeat(" ", colGap))
		}
		c = cut(c, widths[i])
		if paint != nil {
			line.WriteString(paint(i, c))
		} else {
			line.WriteString(c)
		}
		if i < len(row)-1 {
			line.WriteString(strings.Repeat(" ", widths[i]-textWidth(c)))
		}
	}
	b.WriteString(strings.TrimRight(line.String(), " "))
	b.WriteByte('\n')
}

// renderPlain aligns rows without a header and without cutting: for the
// usage text and key/value listings.
func renderPlain(rows [][]string) string {
	widths := columnWidths(rows)
	var b strings.Builder
	for _, r := range rows {
		writeRow(&b, r, widths, nil)
	}
	return b.String()
}

// runeWidth is how many terminal columns r takes: 2 for East Asian wide
// and full-width characters (most emoji among them), 0 for combining
// marks and invisible format characters, else 1.
func runeWidth(r rune) int {
	if r >= 0x20 && r < 0x7f {
		return 1
	}
	if r == 0 || unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) || (r >= 0xFE00 && r <= 0xFE0F) {
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// textWidth is the display width of s.
func textWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

// cut shortens s to at most w columns, ending in "…" when it had to cut.
func cut(s string, w int) string {
	if textWidth(s) <= w {
		return s
	}
	if w <= 0 {
		return ""
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		rw := runeWidth(r)
		if used+rw > w-1 {
			break
		}
		b.WriteRune(r)
		used += rw
	}
	return strings.TrimRight(b.String(), " ") + "…"
}

// clean makes text from the outside (subjects, user agents, errors) safe
// to print on a terminal: control characters (escape sequences, newlines,
// tabs) become spaces, bidirectional overrides are dropped, and runs of
// spaces collapse.
func clean(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case isBidiControl(r):
			continue
		case unicode.IsControl(r) || unicode.IsSpace(r):
			r = ' '
		}
		if r == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

func isBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x200E || r == 0x200F || r == 0x061C
}

// Terminal colours, used only for how an open was counted.
const (
	colorHuman = "\x1b[32m" // green
	colorBot   = "\x1b[2m"  // dim
	colorReset = "\x1b[0m"
)

// kindPainter colours column col by the open's kind: people green, bots
// dim. It returns nil (no colour) when colour is off.
func kindPainter(on bool, col int) func(int, string) string {
	if !on {
		return nil
	}
	return func(i int, cell string) string {
		switch {
		case i != col || cell == "":
			return cell
		case strings.HasPrefix(cell, "bot"):
			return colorBot + cell + colorReset
		default:
			return colorHuman + cell + colorReset
		}
	}
}

// colorOn decides whether to colour: only on a terminal, and never when
// NO_COLOR is set (https://no-color.org) or TERM is "dumb".
func colorOn(terminal bool, getenv func(string) string) bool {
	return terminal && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// accountColumn inserts an ACCOUNT column at col holding names[i] for row
// i, when any of them is a named account; with [upstream] alone ("default"
// or "" everywhere) the table stays as it was.
func (t *table) accountColumn(col int, names []string) {
	named := false
	for _, n := range names {
		named = named || (n != "" && n != config.DefaultAccount)
	}
	if !named {
		return
	}
	values := make([]string, len(names))
	for i, n := range names {
		if n == "" {
			n = config.DefaultAccount
		}
		values[i] = n
	}
	t.insertColumn(col, "ACCOUNT", values)
}

// insertColumn puts a column titled title, one value per row, before
// column col.
func (t *table) insertColumn(col int, title string, values []string) {
	if len(values) != len(t.rows) {
		return
	}
	t.header = slices.Insert(slices.Clone(t.header), col, title)
	for i, v := range values {
		t.rows[i] = slices.Insert(t.rows[i], col, clean(v))
	}
	flex := map[int]int{}
	for c, w := range t.flex {
		if c >= col {
			c++
		}
		flex[c] = w
	}
	t.flex = flex
}
