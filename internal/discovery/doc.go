// Package discovery decides where nodes are, from what peers tell each
// other and nothing else: a node never reads its own addresses from its
// network interfaces or asks an outside service.
//
// It is pure: it keeps state and takes the current time as an argument,
// but opens no sockets, starts no goroutines and never reads the clock,
// so whole clusters of it can be driven in virtual time. The node feeds it
// what arrives on the control stream of each peer link and carries out
// what it answers.
//
// Three parts, each safe for concurrent use:
//
//   - Self votes this node's own public address (per IP family) from the
//     observations peers report in heartbeats ("I see you as IP:port") and
//     classifies the NAT in front of it.
//   - Own keeps this node's own address record and its incarnation, bumped
//     on every change so that the newest record always wins.
//   - Book keeps, per peer, its freshest verified record and what this node
//     saw directly (inbound source addresses, dials that worked or failed),
//     ranks the addresses to dial, and lists the peers to ask others about.
//
// How the node drives it (one Self, Own and Book per node):
//
//	on start:      own, rec, err := NewOwn(name, port, persistedInc, now); persist rec.Incarnation
//	link up:       book.LinkUp(peer, remote, outbound, now); on the new link send our
//	               record and a RecordQuery for book.Unreachable()
//	link down:     book.LinkDown(peer, now); self.Forget(peer, now)
//	heartbeat hb:  if hb.Record != nil, book.Merge(*hb.Record, now): Accepted → push to
//	               every other link; Ours → own.Supersede(rec.Incarnation, now)
//	               o, err := ObservationFromHeartbeat(peer, hb, local, remote, outbound, now)
//	               self.Observe(o)
//	RecordPush:    book.Merge each record, as above
//	RecordQuery:   answer book.Signed(q.Nodes...), plus our own record if named
//	every tick:    self.Expire(now); a RecordQuery for book.Wanted(now) to every
//	               connected peer
//	after each:    if rec, changed := own.Update(self, now); changed { persist
//	               rec.Incarnation; Sign; push to every link;
//	               book.SetSelfAddrs(self.Addresses()) }
//	dialing:       try book.Candidates(peer, now) in order; report with
//	               book.DialFailed or book.LinkUp
package discovery

import "errors"

// Errors callers branch on. Every error about input from peers wraps one
// of them.
var (
	// ErrMalformed marks input that breaks the format: a bad name, an
	// address that does not parse or is not in canonical form, a missing
	// field. It is refused.
	ErrMalformed = errors.New("malformed")
	// ErrImplausible marks an observation that cannot be true, such as a
	// loopback address reported over a link that is not on loopback. It is
	// refused and should be logged: the peer is buggy or lying.
	ErrImplausible = errors.New("implausible observation")
	// ErrBadSignature marks a record whose signature does not verify with
	// its subject's key: forged, or signed by another node.
	ErrBadSignature = errors.New("bad record signature")
	// ErrConflict marks a record with the same incarnation as the one held
	// but a different content. A node never signs two such records, so
	// one of them is not genuine; the held one is kept.
	ErrConflict = errors.New("conflicting record")
)
