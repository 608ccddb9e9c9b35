package zonefile

import (
	"strconv"
	"strings"
)

// miekg's ZoneParser does not say at which line a record it returns began,
// only where a syntax error is. The zone checks (SOA at the apex, names in
// the zone, CNAME alone) need that line too, so each file is scanned here
// into the entries the parser will find in it, split at the same places as
// miekg's lexer splits them (newlines outside parentheses and quotes,
// comments, escapes), and the tracker pairs the parser's records with those
// entries in order. It only names lines: if it ever disagreed with the
// parser, an error would name the wrong line, never load wrong data.

type eventKind int

const (
	evRecord   eventKind = iota // one record
	evInclude                   // the records of the next file opened
	evGenerate                  // count records, from $GENERATE
)

type event struct {
	kind  eventKind
	line  int
	count int // evGenerate
}

// fileEvents is one file's entries in order. name is the file as miekg
// names it in errors (absolute, perhaps without the leading slash).
type fileEvents struct {
	name   string
	events []event
}

// scan splits master-file text into entries like miekg's zlexer does.
func scan(text []byte) []event {
	var (
		evs                    []event
		line                   = 1
		quote, escape, comment bool
		brace                  int
		inEntry                bool
		atStart                = true // nothing but newlines yet on this line
		ownerPos               bool   // the entry began at column 1
		startLine, startOff    int
	)
	end := func(off int) {
		if inEntry {
			evs = appendEntry(evs, text[startOff:off], ownerPos, startLine)
		}
		inEntry, atStart = false, true
	}
	token := func(off int) {
		if !inEntry {
			inEntry, ownerPos, startLine, startOff = true, atStart, line, off
		}
		atStart = false
	}
	for i, x := range text {
		if comment {
			if x != '\n' {
				continue
			}
			comment = false
		}
		switch x {
		case '\n':
			escape = false
			if !quote && brace == 0 {
				end(i)
			}
			line++
		case ' ', '\t':
			if escape || quote {
				escape = false
				token(i)
				continue
			}
			atStart = false // a line starting blank has no owner
		case '\r':
			escape = false
			if quote {
				token(i)
			}
		case ';':
			if escape || quote {
				escape = false
				token(i)
				continue
			}
			comment = true
		case '"':
			if !escape {
				quote = !quote
			}
			escape = false
			token(i)
		case '(', ')':
			if escape || quote {
				escape = false
				token(i)
				continue
			}
			if x == '(' {
				brace++
			} else if brace > 0 {
				brace--
			}
		case '\\':
			escape = !escape
			token(i)
		default:
			escape = false
			token(i)
		}
	}
	end(len(text))
	return evs
}

// appendEntry classifies one entry: a directive at column 1 or a record.
func appendEntry(evs []event, raw []byte, ownerPos bool, line int) []event {
	if !ownerPos || raw[0] != '$' {
		return append(evs, event{kind: evRecord, line: line})
	}
	fields := strings.Fields(string(raw))
	switch strings.ToUpper(fields[0]) {
	case "$TTL", "$ORIGIN":
		return evs
	case "$INCLUDE":
		return append(evs, event{kind: evInclude, line: line})
	case "$GENERATE":
		n := 0
		if len(fields) > 1 {
			n = generateCount(fields[1])
		}
		return append(evs, event{kind: evGenerate, line: line, count: n})
	}
	return append(evs, event{kind: evRecord, line: line})
}

// generateCount is the number of records a $GENERATE range start-stop[/step]
// makes, as miekg reads the range; 0 if it is malformed (miekg then fails).
func generateCount(r string) int {
	step := int64(1)
	if i := strings.IndexByte(r, '/'); i >= 0 {
		s, err := strconv.ParseInt(r[i+1:], 10, 64)
		if err != nil || s <= 0 {
			return 0
		}
		step, r = s, r[:i]
	}
	a, b, ok := strings.Cut(r, "-")
	if !ok {
		return 0
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	stop, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || stop < start || (stop-start)/step > 65535 {
		return 0
	}
	return int((stop-start)/step) + 1
}

// tracker follows the parser through the files: the top file's entries,
// and at each $INCLUDE the entries of the file opened next.
type tracker struct {
	stack  []*cursor
	opened []*fileEvents // opened by the parser, not yet entered
	files  []*fileEvents // every included file, for error names
}

type cursor struct {
	f       *fileEvents
	i       int
	genLeft int
	genLine int
}

// next returns the file and line of the parser's next record, or "", 0 if
// the scan lost track.
func (t *tracker) next() (string, int) {
	for len(t.stack) > 0 {
		c := t.stack[len(t.stack)-1]
		if c.genLeft > 0 {
			c.genLeft--
			return c.f.name, c.genLine
		}
		if c.i == len(c.f.events) {
			t.stack = t.stack[:len(t.stack)-1]
			continue
		}
		e := c.f.events[c.i]
		c.i++
		switch e.kind {
		case evRecord:
			return c.f.name, e.line
		case evGenerate:
			c.genLeft, c.genLine = e.count, e.line
		case evInclude:
			if len(t.opened) > 0 {
				t.stack = append(t.stack, &cursor{f: t.opened[0]})
				t.opened = t.opened[1:]
			}
		}
	}
	return "", 0
}

// generateLine returns the line of the $GENERATE the parser is in, if it
// is in one in file. miekg numbers the lines of a $GENERATE's output as if
// they were a file of their own, so its errors need the directive's line.
func (t *tracker) generateLine(file string) (int, bool) {
	for i := len(t.stack) - 1; i >= 0; i-- {
		c := t.stack[i]
		if c.genLeft == 0 && c.i == len(c.f.events) {
			continue // finished; the parser is in the file below
		}
		if c.f.name != file {
			return 0, false
		}
		if c.genLeft > 0 {
			return c.genLine, true
		}
		if e := c.f.events[c.i]; e.kind == evGenerate {
			return e.line, true
		}
		return 0, false
	}
	return 0, false
}
