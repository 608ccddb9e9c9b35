// Package zonefile loads DNS zones from RFC 1035 master files: $ORIGIN,
// $TTL and $INCLUDE (and BIND's $GENERATE), parsed with miekg/dns. An
// $INCLUDE may only reach files in or below the folder of the file that
// includes it, and every problem is reported as "file:line: reason", with
// the included file's name and line when the problem is there.
//
// Load checks what makes a file a zone (one SOA at the apex, every name
// inside the zone, class IN, a CNAME alone at its name); the store
// canonicalizes the records and enforces the same rules again on every
// node.
package zonefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Limits of one Load.
const (
	// MaxBytes bounds the bytes read for one zone, included files counted
	// (an $INCLUDE fan-out must not read without end).
	MaxBytes = 64 << 20
	// MaxRecords is the most records one zone may have; it matches the
	// store's limit (store.MaxZoneRecords).
	MaxRecords = 200_000
	// DefaultTTL is the TTL of records that have none, when the file sets
	// none before them and Load is given none.
	DefaultTTL = 3600
)

// ErrIncludeOutside is the cause of an $INCLUDE refused because it names a
// file outside the including file's folder (by "..", an absolute path or a
// symbolic link).
var ErrIncludeOutside = errors.New("outside the zone file's folder")

// Error is a problem found in a zone file.
type Error struct {
	// File is the file's path: the one given to Load, or an included
	// file's path built from it.
	File string
	// Line is the 1-based line of the problem, 0 when it is not at one
	// line (a missing SOA).
	Line int
	// Reason says what is wrong.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads the zone with apex origin from the master file at path. An
// empty origin takes the apex from the file's SOA record (the file must
// then use absolute names or $ORIGIN). defaultTTL is the TTL of records
// that have none before any $TTL or explicit TTL; 0 means DefaultTTL.
//
// The records come in file order except that the SOA is first. Names keep
// the case they have in the file. Any problem returns an *Error.
func Load(path, origin string, defaultTTL uint32) ([]dns.RR, error) {
	if origin != "" {
		if _, ok := dns.IsDomainName(origin); !ok {
			return nil, &Error{File: path, Reason: fmt.Sprintf("zone origin %q is not a domain name", origin)}
		}
		origin = dns.CanonicalName(origin)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{File: path, Reason: err.Error(), Err: err}
	}
	l := &loader{
		userPath: path,
		absTop:   abs,
		rootDir:  filepath.Dir(abs),
		budget:   MaxBytes,
		maxRRs:   MaxRecords,
	}
	top, err := l.readTop()
	if err != nil {
		reason := err.Error()
		if pe, ok := err.(*fs.PathError); ok {
			reason = pe.Err.Error() // the path is said already
		}
		return nil, &Error{File: path, Reason: reason, Err: err}
	}
	root, err := os.OpenRoot(l.rootDir)
	if err != nil {
		return nil, &Error{File: path, Reason: fmt.Sprintf("open its folder for $INCLUDE: %v", err), Err: err}
	}
	defer root.Close()
	l.root = root
	rrs, where, err := l.parse(top, origin, defaultTTL)
	if err != nil {
		return nil, err
	}
	return l.check(origin, rrs, where)
}

// parse reads the records of the top file's text and its includes, and
// where each was read.
func (l *loader) parse(top []byte, origin string, defaultTTL uint32) ([]dns.RR, []place, error) {
	l.track.stack = []*cursor{{f: &fileEvents{name: l.absTop, events: scan(top)}}}
	zp := dns.NewZoneParser(bytes.NewReader(top), origin, l.absTop)
	zp.SetIncludeAllowed(true)
	// miekg resolves an $INCLUDE against the including file's name and
	// hands the FS the absolute path without its leading slash; the
	// loader checks it against the folder before opening anything.
	zp.SetIncludeFS(l)
	if defaultTTL == 0 {
		defaultTTL = DefaultTTL
	}
	zp.SetDefaultTTL(defaultTTL)
	var (
		rrs   []dns.RR
		where []place
	)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		p := l.place()
		if len(rrs) == l.maxRRs {
			return nil, nil, l.errorAt(p, fmt.Sprintf("more than %d records", l.maxRRs))
		}
		rrs = append(rrs, rr)
		where = append(where, p)
	}
	if err := zp.Err(); err != nil {
		return nil, nil, l.parseError(err)
	}
	// miekg drops an unfinished last entry (an owner, perhaps a TTL, then
	// the end of the file) without a word; the scan still counts it.
	if p := l.place(); p.file != "" {
		return nil, nil, l.errorAt(p, "incomplete record at the end of the file")
	}
	return rrs, where, nil
}

// place is where a record was read: file as miekg names it, 1-based line.
type place struct {
	file string
	line int
}

type loader struct {
	userPath string // as given to Load
	absTop   string
	rootDir  string // folder of the top file; includes stay below it
	root     *os.Root
	budget   int64 // bytes left to read
	maxRRs   int   // MaxRecords, lower in tests
	track    tracker
}

// place attributes the record the parser just returned.
func (l *loader) place() place {
	f, line := l.track.next()
	return place{f, line}
}

func (l *loader) errorAt(p place, reason string) *Error {
	if p.file == "" {
		return &Error{File: l.userPath, Reason: reason}
	}
	return &Error{File: l.display(p.file), Line: p.line, Reason: reason}
}

// display turns a file name as miekg knows it (absolute, perhaps without
// its leading slash) into a path relative to what the caller gave Load.
func (l *loader) display(file string) string {
	p := file
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	p = filepath.FromSlash(p)
	if p == l.absTop {
		return l.userPath
	}
	rel, err := filepath.Rel(l.rootDir, p)
	if err != nil || !filepath.IsLocal(rel) {
		return p
	}
	return filepath.Join(filepath.Dir(l.userPath), rel)
}

// known reports whether file is one the parser read (some of miekg's
// errors put other text where the file name goes).
func (l *loader) known(file string) bool {
	if !strings.HasPrefix(file, "/") {
		file = "/" + file
	}
	if file == l.absTop {
		return true
	}
	for _, f := range l.track.files {
		if f.name == file {
			return true
		}
	}
	return false
}

func (l *loader) readTop() ([]byte, error) {
	f, err := os.Open(l.userPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return l.read(f)
}

// read reads a whole regular file within the byte budget.
func (l *loader) read(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, l.budget+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > l.budget {
		return nil, fmt.Errorf("zone files larger than %d MiB in all", MaxBytes>>20)
	}
	l.budget -= int64(len(b))
	return b, nil
}

// Open implements fs.FS for the parser's $INCLUDEs: name is the absolute
// path without its leading slash. Only files in or below rootDir open, also
// through symbolic links.
func (l *loader) Open(name string) (fs.File, error) {
	f, err := l.open(name)
	if err != nil {
		return nil, &includeError{err}
	}
	return f, nil
}

// includeError marks the errors of Open, to tell them from the parser's.
type includeError struct{ err error }

func (e *includeError) Error() string { return e.err.Error() }
func (e *includeError) Unwrap() error { return e.err }

func (l *loader) open(name string) (fs.File, error) {
	abs := filepath.FromSlash("/" + name)
	rel, err := filepath.Rel(l.rootDir, abs)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%w %s", ErrIncludeOutside, l.displayDir())
	}
	f, err := l.root.Open(rel)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// os.Root refuses symbolic links that leave the folder and also
		// absolute ones that do not; resolve to tell which.
		f, err = l.openResolved(abs, err)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no such file")
		}
		return nil, err
	}
	defer f.Close()
	b, err := l.read(f)
	if err != nil {
		return nil, err
	}
	fe := &fileEvents{name: "/" + name, events: scan(b)}
	l.track.opened = append(l.track.opened, fe)
	l.track.files = append(l.track.files, fe)
	return &memFile{Reader: bytes.NewReader(b), name: filepath.Base(abs), size: int64(len(b))}, nil
}

func (l *loader) openResolved(abs string, rootErr error) (*os.File, error) {
	realRoot, err := filepath.EvalSymlinks(l.rootDir)
	if err != nil {
		return nil, rootErr
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, rootErr
	}
	rel, err := filepath.Rel(realRoot, real)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%w %s (it is a link to %s)", ErrIncludeOutside, l.displayDir(), real)
	}
	return l.root.Open(rel)
}

func (l *loader) displayDir() string {
	if d := filepath.Dir(l.userPath); d != "." {
		return d
	}
	return l.rootDir
}

// memFile is an included file, read whole (to scan it and to bound it).
type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (m *memFile) Stat() (fs.FileInfo, error) { return m, nil }
func (m *memFile) Close() error               { return nil }
func (m *memFile) Name() string               { return m.name }
func (m *memFile) Size() int64                { return m.size }
func (m *memFile) Mode() fs.FileMode          { return 0o444 }
func (m *memFile) ModTime() time.Time         { return time.Time{} }
func (m *memFile) IsDir() bool                { return false }
func (m *memFile) Sys() any                   { return nil }

// parseErrorRE takes apart miekg's ParseError text: `FILE: dns: REASON:
// "TOKEN" at line: L:C`. ParseError keeps its fields to itself.
var parseErrorRE = regexp.MustCompile(`(?s)^(.*?): dns: (.*): ("(?:[^"\\]|\\.)*") at line: (\d+):(\d+)$`)

// parseError turns the parser's error into an *Error at file:line.
func (l *loader) parseError(err error) error {
	var pe *dns.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: l.userPath, Reason: err.Error(), Err: err}
	}
	m := parseErrorRE.FindStringSubmatch(pe.Error())
	if m == nil {
		return &Error{File: l.userPath, Reason: pe.Error(), Err: err}
	}
	line, _ := strconv.Atoi(m[4])
	token, uerr := strconv.Unquote(m[3])
	if uerr != nil {
		token = m[3]
	}
	reason := fmt.Sprintf("%s: %s", m[2], m[3])
	// An $INCLUDE that could not be opened: miekg wraps the FS's error in
	// its own words; say it plainly.
	var ie *includeError
	if errors.As(err, &ie) {
		reason = fmt.Sprintf("$INCLUDE %s: %v", token, ie.err)
		err = ie.err
	}
	file := l.userPath
	if l.known(m[1]) {
		file = l.display(m[1])
		name := m[1]
		if !strings.HasPrefix(name, "/") {
			name = "/" + name
		}
		if gl, ok := l.track.generateLine(name); ok {
			line = gl
		}
	}
	return &Error{File: file, Line: line, Reason: reason, Err: err}
}

// check enforces what makes the records a zone and puts the SOA first.
func (l *loader) check(origin string, rrs []dns.RR, where []place) ([]dns.RR, error) {
	soa := -1
	if origin == "" {
		for _, rr := range rrs {
			if rr.Header().Rrtype == dns.TypeSOA {
				origin = dns.CanonicalName(rr.Header().Name)
				break
			}
		}
		if origin == "" {
			return nil, &Error{File: l.userPath, Reason: "no SOA record"}
		}
	}
	type seen struct{ cname, other int } // indexes, -1: none
	names := map[string]*seen{}
	for i, rr := range rrs {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		at := func(format string, a ...any) error { return l.errorAt(where[i], fmt.Sprintf(format, a...)) }
		switch {
		case h.Class != dns.ClassINET:
			return nil, at("class %s: a zone holds class IN only", dns.Class(h.Class))
		case isMetaType(h.Rrtype):
			return nil, at("type %s cannot be in a zone", dns.Type(h.Rrtype))
		case strings.TrimSpace(strings.TrimPrefix(rr.String(), h.String())) == "":
			return nil, at("%s record without data", dns.Type(h.Rrtype))
		case !dns.IsSubDomain(origin, name):
			return nil, at("%s is outside the zone %s", h.Name, origin)
		case h.Rrtype == dns.TypeSOA && name != origin:
			return nil, at("SOA record for %s is not at the zone apex %s", h.Name, origin)
		case h.Rrtype == dns.TypeSOA && soa >= 0:
			return nil, at("second SOA record (the first is at %s)", l.where(where[soa]))
		case h.Rrtype == dns.TypeSOA:
			soa = i
		}
		s := names[name]
		if s == nil {
			s = &seen{-1, -1}
			names[name] = s
		}
		switch t := h.Rrtype; {
		case t == dns.TypeCNAME:
			if s.other >= 0 {
				return nil, at("CNAME at %s beside other data (%s at %s)", h.Name, dns.Type(rrs[s.other].Header().Rrtype), l.where(where[s.other]))
			}
			if s.cname >= 0 && !dns.IsDuplicate(rr, rrs[s.cname]) {
				return nil, at("second CNAME for %s (the first is at %s)", h.Name, l.where(where[s.cname]))
			}
			if s.cname < 0 {
				s.cname = i
			}
		case t != dns.TypeRRSIG && t != dns.TypeNSEC:
			if s.cname >= 0 {
				return nil, at("%s at %s beside its CNAME (at %s)", dns.Type(t), h.Name, l.where(where[s.cname]))
			}
			if s.other < 0 {
				s.other = i
			}
		}
	}
	if soa < 0 {
		return nil, &Error{File: l.userPath, Reason: fmt.Sprintf("no SOA record for %s", origin)}
	}
	out := make([]dns.RR, 0, len(rrs))
	out = append(out, rrs[soa])
	out = append(out, rrs[:soa]...)
	return append(out, rrs[soa+1:]...), nil
}

func (l *loader) where(p place) string {
	e := l.errorAt(p, "")
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return e.File
}

// isMetaType reports types that are questions or transport, never data.
func isMetaType(t uint16) bool {
	switch t {
	case dns.TypeNone, dns.TypeOPT, dns.TypeTKEY, dns.TypeTSIG, dns.TypeIXFR,
		dns.TypeAXFR, dns.TypeMAILB, dns.TypeMAILA, dns.TypeANY:
		return true
	}
	return false
}
