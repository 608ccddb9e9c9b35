//go:build bolt

package main

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// storeName labels this variant in the output; run.sh keys its table on it.
const storeName = "bolt"

// logStore is what the benchmark needs from a Raft store: the log, the
// stable (term/vote) store, and a Close that releases the files.
type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// openStore opens raft-boltdb/v2 in dir with its defaults (NoSync false, so
// every transaction is fsynced), as Consul ran it before raft-wal.
func openStore(dir string) (logStore, error) {
	b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("open raft-boltdb %s: %w", dir, err)
	}
	return b, nil
}
