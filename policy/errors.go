package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one configuration problem at a position in the file.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

// Error formats the problem as "FILE:LINE:COL: msg", the form editors and
// CI annotations understand.
func (e Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Errors are every problem found in one file, sorted by position.
type Errors []Error

// Error joins the problems, one per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// sortDedup sorts es by position and drops exact duplicates (an alias can
// make the same node be reported twice).
func (es Errors) sortDedup() Errors {
	slices.SortStableFunc(es, func(a, b Error) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Column, b.Column)
	})
	return slices.Compact(es)
}
