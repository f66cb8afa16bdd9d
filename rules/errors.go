package rules

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// errorList gathers every problem of a standard so one run of the author's
// editor fixes them all, each rendered "<source>:<line>: <path>: <reason>".
type errorList struct {
	source string
	items  []lineError
}

type lineError struct {
	line int
	path string
	msg  string
}

func (l *errorList) add(line int, path, format string, args ...any) {
	l.items = append(l.items, lineError{line: line, path: displayPath(path), msg: fmt.Sprintf(format, args...)})
}

// addShown is add with a path already in display form (e.g. with the rule ID).
func (l *errorList) addShown(line int, shown, format string, args ...any) {
	l.items = append(l.items, lineError{line: line, path: shown, msg: fmt.Sprintf(format, args...)})
}

func (l *errorList) err() error {
	if len(l.items) == 0 {
		return nil
	}
	sort.SliceStable(l.items, func(i, j int) bool { return l.items[i].line < l.items[j].line })
	errs := make([]error, len(l.items))
	for i, it := range l.items {
		errs[i] = errors.New(l.render(it))
	}
	return errors.Join(errs...)
}

func (l *errorList) render(it lineError) string {
	var b strings.Builder
	src := l.source
	if src == "" {
		src = "standard"
	}
	b.WriteString(src)
	if it.line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(it.line))
	}
	b.WriteString(": ")
	if it.path != "" {
		b.WriteString(it.path)
		b.WriteString(": ")
	}
	b.WriteString(it.msg)
	out := b.String()
	if hasLineBreak(out) {
		// Paths and reasons echo the document's own keys and values; one
		// holding a line break must not split a problem across lines.
		out = strings.NewReplacer("\r", `\r`, "\n", `\n`, "\u0085", `\u0085`, "\u2028", `\u2028`, "\u2029", `\u2029`).Replace(out)
	}
	return out
}

// displayPath drops the "spec." every rule lives under: authors think of
// "labels[2]", not "spec.labels[2]".
func displayPath(p string) string {
	return strings.TrimPrefix(p, "spec.")
}
