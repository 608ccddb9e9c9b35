package buoy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// addrBook keeps, per peer name, the addresses this node has seen work or
// been told about, best first. It is the peer layer's resolver. It is saved
// in the data dir so that a restarted node can reach its peers before its
// Raft state has caught up (the member records arrive only through Raft).
type addrBook struct {
	path string

	// mu guards the following fields.
	mu    sync.Mutex
	known map[string][]string // name → addresses, best first
	dirty bool
}

const addrBookFile = "peers.json"

// maxAddrs bounds the candidates kept per peer.
const maxAddrs = 4

func loadAddrBook(dir string) (*addrBook, error) {
	b := &addrBook{path: filepath.Join(dir, addrBookFile), known: map[string][]string{}}
	data, err := os.ReadFile(b.path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", b.path, err)
	}
	if err := json.Unmarshal(data, &b.known); err != nil {
		// A damaged cache is not fatal: Raft and peers will tell us again.
		b.known = map[string][]string{}
	}
	return b, nil
}

// learn puts addr first among name's candidates.
func (b *addrBook) learn(name, addr string) {
	if addr == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.known[name]
	if len(cur) > 0 && cur[0] == addr {
		return
	}
	next := append([]string{addr}, slices.DeleteFunc(slices.Clone(cur), func(a string) bool { return a == addr })...)
	if len(next) > maxAddrs {
		next = next[:maxAddrs]
	}
	b.known[name] = next
	b.dirty = true
}

// add appends addr to name's candidates if it is new (a hint, not proof).
func (b *addrBook) add(name, addr string) {
	if addr == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.known[name]
	if slices.Contains(cur, addr) || len(cur) >= maxAddrs {
		return
	}
	b.known[name] = append(slices.Clone(cur), addr)
	b.dirty = true
}

func (b *addrBook) forget(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.known[name]; ok {
		delete(b.known, name)
		b.dirty = true
	}
}

func (b *addrBook) get(name string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.known[name])
}

// save writes the book if it changed, atomically.
func (b *addrBook) save() error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	data, err := json.MarshalIndent(b.known, "", "  ")
	b.dirty = false
	b.mu.Unlock()
	if err != nil {
		return err
	}
	return writeFileAtomic(b.path, data, 0o600)
}

// withPort returns IP-of(remote):port, the address at which a peer that
// dialed us from remote accepts links, or "" if either part is missing or
// remote is not an IP address (a relayed or WebSocket link).
func withPort(remote net.Addr, port int) string {
	if remote == nil || port <= 0 || port > 65535 {
		return ""
	}
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return ""
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), uint16(port)).String()
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new content.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
