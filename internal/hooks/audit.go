package hooks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind tells audit entries apart.
type Kind string

// The audit entry kinds.
const (
	// KindTransition records a role changing holder or epoch, as this
	// node saw it.
	KindTransition Kind = "transition"
	// KindHook records one hook run and its result.
	KindHook Kind = "hook"
)

// Entry is one line of the audit log.
type Entry struct {
	Time time.Time `json:"time"`
	Kind Kind      `json:"kind"`
	Role string    `json:"role"`
	// Event is the hook event (hook entries) or what this node did
	// (transitions: promote, demote, change).
	Event      Event  `json:"event,omitempty"`
	Epoch      uint64 `json:"epoch,omitempty"`
	Node       string `json:"node,omitempty"`
	Holder     string `json:"holder,omitempty"`
	HolderAddr string `json:"holder_addr,omitempty"`
	Previous   string `json:"previous,omitempty"`
	// Reason says why a transition happened ("lease lost", "planned
	// move", "health check failed").
	Reason string `json:"reason,omitempty"`
	// Hook runs: the executable, exit status (-1: did not exit by
	// itself), run time, error and the end of the output.
	Path     string        `json:"path,omitempty"`
	ExitCode *int          `json:"exit_code,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Error    string        `json:"error,omitempty"`
	Output   string        `json:"output,omitempty"`
}

// auditOutputLimit bounds the output kept in a hook entry; the full
// (bounded) output is in the log.
const auditOutputLimit = 1 << 10

// HookEntry is the audit entry for a hook run: its last 1 KiB of output
// and its result.
func HookEntry(res Result) Entry {
	code := res.ExitCode
	e := Entry{
		Time: res.Started, Kind: KindHook, Role: res.Role, Event: res.Event, Epoch: res.Epoch,
		Path: res.Path, ExitCode: &code, Duration: res.Duration,
	}
	if res.Err != nil {
		e.Error = res.Err.Error()
	}
	out := res.Output
	if len(out) > auditOutputLimit {
		out = out[len(out)-auditOutputLimit:]
	}
	e.Output = strings.ToValidUTF8(string(out), "\uFFFD")
	return e
}

// Audit file names: the current file and rotated ones, .1 the newest.
const auditName = "audit.jsonl"

// Defaults for AuditOptions left zero.
const (
	DefaultAuditMaxBytes = 1 << 20
	DefaultAuditKeep     = 4
)

// ErrCorrupt is wrapped by ReadAudit when lines could not be decoded.
var ErrCorrupt = errors.New("audit log corrupt")

// AuditOptions bound the audit log.
type AuditOptions struct {
	// MaxBytes is the size at which the current file is rotated (default
	// 1 MiB). An entry is never split across files.
	MaxBytes int64
	// Keep is how many rotated files are kept (default 4); older ones
	// are deleted. The log so takes at most about (Keep+1)*MaxBytes.
	Keep int
}

// AuditLog appends entries to <dir>/audit.jsonl, one JSON object per line,
// and syncs the file after each one, so an entry Append returned for
// survives a crash. It is safe for concurrent use.
type AuditLog struct {
	dir  string
	opts AuditOptions

	// mu guards the following fields and the files.
	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenAudit opens or creates the audit log in dir (created 0700 if
// missing). A torn last line, left by a crash during a write, is cut off.
func OpenAudit(dir string, opts AuditOptions) (*AuditLog, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultAuditMaxBytes
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultAuditKeep
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	a := &AuditLog{dir: dir, opts: opts}
	if err := a.openCurrent(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *AuditLog) openCurrent() error {
	path := filepath.Join(a.dir, auditName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	size, err := cutTornTail(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("open audit log %s: %w", path, err)
	}
	a.f, a.size = f, size
	return nil
}

// cutTornTail truncates f after its last newline and returns the new size.
func cutTornTail(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	end := size
	buf := make([]byte, 4096)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end == size {
		return size, nil
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	return end, f.Sync()
}

// Append writes e as one line and syncs it. A zero Time is set to now.
func (a *AuditLog) Append(e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit append: %w", err)
	}
	line = append(line, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return fmt.Errorf("audit append: %w", os.ErrClosed)
	}
	if a.size > 0 && a.size+int64(len(line)) > a.opts.MaxBytes {
		if err := a.rotateLocked(); err != nil {
			return fmt.Errorf("audit append: %w", err)
		}
	}
	n, err := a.f.Write(line)
	if err == nil {
		err = a.f.Sync()
	}
	if err != nil {
		// Cut a partial line so the next entry starts on its own line.
		if n > 0 {
			_ = a.f.Truncate(a.size)
		}
		return fmt.Errorf("audit append: %w", err)
	}
	a.size += int64(n)
	return nil
}

// rotateLocked shifts audit.jsonl.N up by one (deleting the oldest beyond
// Keep), renames the current file to .1 and starts a new one. A crash in
// between leaves a gap in the numbering, which the reader tolerates.
func (a *AuditLog) rotateLocked() error {
	if err := a.f.Close(); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	a.f = nil
	nums, err := rotatedNums(a.dir)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	for _, n := range slices.Backward(nums) { // highest first
		from := rotatedPath(a.dir, n)
		if n >= a.opts.Keep {
			if err := os.Remove(from); err != nil {
				return fmt.Errorf("rotate: %w", err)
			}
			continue
		}
		if err := os.Rename(from, rotatedPath(a.dir, n+1)); err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
	}
	if err := os.Rename(filepath.Join(a.dir, auditName), rotatedPath(a.dir, 1)); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	if err := a.openCurrent(); err != nil {
		return err
	}
	return syncDir(a.dir)
}

func rotatedPath(dir string, n int) string {
	return filepath.Join(dir, auditName+"."+strconv.Itoa(n))
}

// rotatedNums lists the numbers of the rotated files in dir, ascending.
func rotatedNums(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, e := range ents {
		suffix, ok := strings.CutPrefix(e.Name(), auditName+".")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(suffix); err == nil && n > 0 && strconv.Itoa(n) == suffix {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// Entries reads the whole log, oldest first, like ReadAudit, without
// racing this log's own appends and rotations.
func (a *AuditLog) Entries() ([]Entry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return ReadAudit(a.dir)
}

// Close closes the log file. Appends after Close fail.
func (a *AuditLog) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	if err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return nil
}

// ReadAudit reads every entry of the audit log in dir, oldest first. A
// missing log is empty. A last line without its newline (an append in
// progress) is skipped. Lines that do not decode are skipped too, and the
// entries that do are returned along with an error wrapping ErrCorrupt that
// names the first bad line, so a history can still be shown. A process
// other than the writer may miss or repeat entries if the writer rotates
// while it reads; AuditLog.Entries does not.
func ReadAudit(dir string) ([]Entry, error) {
	nums, err := rotatedNums(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	paths := make([]string, 0, len(nums)+1)
	for _, n := range slices.Backward(nums) {
		paths = append(paths, rotatedPath(dir, n))
	}
	paths = append(paths, filepath.Join(dir, auditName))
	var all []Entry
	var bad int
	var firstBad error
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // rotated away meanwhile, or never written
		}
		if err != nil {
			return all, fmt.Errorf("read audit log: %w", err)
		}
		entries, nBad, errBad, err := decodeEntries(f)
		f.Close()
		all = append(all, entries...)
		if err != nil {
			return all, fmt.Errorf("read audit log %s: %w", p, err)
		}
		if nBad > 0 && firstBad == nil {
			firstBad = fmt.Errorf("%s: %w", p, errBad)
		}
		bad += nBad
	}
	if bad > 0 {
		return all, fmt.Errorf("read audit log: %w: %d unreadable lines, first %w", ErrCorrupt, bad, firstBad)
	}
	return all, nil
}

// maxLine bounds one line of the audit log when reading.
const maxLine = 1 << 20

// decodeEntries decodes JSON lines from r. It skips an unterminated last
// line, counts lines that do not decode and describes the first of them;
// err is only for read errors.
func decodeEntries(r io.Reader) (entries []Entry, bad int, firstBad, err error) {
	br := bufio.NewReader(r)
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return entries, bad, firstBad, nil // a torn tail, if any, is skipped
		}
		if err != nil && !errors.Is(err, errLineTooLong) {
			return entries, bad, firstBad, err
		}
		if err == nil && len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e Entry
		derr := err
		if derr == nil {
			derr = decodeEntry(line, &e)
		}
		if derr != nil {
			if bad == 0 {
				firstBad = fmt.Errorf("line %d: %w", lineNo, derr)
			}
			bad++
			continue
		}
		entries = append(entries, e)
	}
}

// errLineTooLong marks a line over maxLine, whose bytes are skipped.
var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLine)

// readLine returns the next complete line without its newline, and io.EOF
// at the end, also when the last line has no newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong && len(line)+len(chunk) > maxLine {
			tooLong, line = true, nil
		}
		if !tooLong {
			line = append(line, chunk...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			return nil, err
		case tooLong:
			return nil, errLineTooLong
		}
		return bytes.TrimSuffix(line, []byte("\n")), nil
	}
}

// decodeEntry decodes one line: one JSON object with a kind. Unknown keys
// are ignored, so that an older binary reads a newer one's log.
func decodeEntry(line []byte, e *Entry) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(e); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value on the line")
	}
	if e.Kind == "" {
		return errors.New("entry without kind")
	}
	return nil
}
