//go:build !bolt

package main

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// storeName labels this variant in the output; run.sh keys its table on it.
const storeName = "wal"

// logStore is what the benchmark needs from a Raft store: the log, the
// stable (term/vote) store, and a Close that releases the files.
type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// walStore closes the meta database that raft-wal v0.4.0's own Close leaves
// open (fixed upstream in hashicorp/raft-wal#28, not released): without this
// the bbolt flock stays held and reopening the same directory in the same
// process blocks forever.
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (s walStore) Close() error { return errors.Join(s.WAL.Close(), s.meta.Close()) }

// openStore opens raft-wal in dir with its defaults (fsync on every append,
// 64 MiB segments), as Consul runs it.
func openStore(dir string) (logStore, error) {
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta))
	if err != nil {
		return nil, fmt.Errorf("open raft-wal %s: %w", dir, err)
	}
	return walStore{WAL: w, meta: meta}, nil
}
