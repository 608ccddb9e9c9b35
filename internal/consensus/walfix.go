package consensus

import (
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// truncatedSegmentFiler works around hashicorp/raft-wal issue 31, which
// v0.4.0 (the newest release on the module proxy) still has: truncating
// the tail of the log, as a follower does when a new leader overwrites
// entries a deposed leader never committed, marks the tail segment sealed
// in the metadata but never writes the index block a sealed segment is
// read through. The process goes on reading it from memory; after a
// restart every read of it fails with "sealed segment has no index block",
// and raft.NewRaft panics on the first. (raft-wal fixed it after v0.4.0 by
// writing the index on truncation.)
//
// Such a segment is opened the way a crashed tail is: by scanning its
// frames to rebuild the index in memory. Its entries past the truncation
// point are still in the file but never read: the metadata's MaxIndex
// sends reads of later indexes to the next segment.
type truncatedSegmentFiler struct {
	*segment.Filer
}

func newTruncatedSegmentFiler(dir string) truncatedSegmentFiler {
	return truncatedSegmentFiler{segment.NewFiler(dir, fs.New())}
}

// Open opens a sealed segment, recovering one sealed without an index.
func (f truncatedSegmentFiler) Open(info types.SegmentInfo) (types.SegmentReader, error) {
	if !info.SealTime.IsZero() && info.IndexStart == 0 {
		return f.Filer.RecoverTail(info)
	}
	return f.Filer.Open(info)
}
