package failover

import (
	"fmt"
	"time"
)

// Renewal asks the voters to acknowledge that Node still holds Role at
// Epoch. The holder sends one to every voter (its own witness included)
// and counts a round once a majority acknowledged it.
type Renewal struct {
	Role  string
	Epoch uint64
	Node  string
	// Session identifies the holder's process run; it must be larger than
	// that of every earlier run of the same node (for example the node's
	// incarnation when it started), so that a witness can tell a release
	// from an earlier run from one of the current run.
	Session uint64
	// Seq numbers the holder's rounds for the epoch; acks echo it.
	Seq uint64
}

// Ack is a witness's acknowledgement of one renewal round.
type Ack struct {
	Role  string
	Epoch uint64
	// Session and Seq echo the renewal's: a holder that restarted must not
	// count an acknowledgement of its earlier run's round of the same
	// number, which the witness may have given long before.
	Session uint64
	Seq     uint64
	// From is the acknowledging node.
	From string
}

// Release tells the witnesses that Node, in run Session, gave Role's Epoch
// up for good: its demote hook has run and it will never again believe it
// holds that epoch. A witness that receives it may acknowledge a newer
// holder at once instead of waiting out its promise.
type Release struct {
	Role    string
	Epoch   uint64
	Node    string
	Session uint64
}

// Witness is one node's part in every role's lease: it acknowledges
// renewals of the holder its replicated state names, and promises, after
// each acknowledgement, not to acknowledge a holder of a newer epoch for
// Lease+Margin of its own clock. A holder counts only rounds a majority of
// voters acknowledged, and any two majorities share a witness, so a new
// holder can be acknowledged only after a witness that also backed the old
// holder's newest round kept its promise out. Every node, voter or not,
// has exactly one Witness for the life of its process.
//
// A Witness is not safe for concurrent use; the node serialises calls.
type Witness struct {
	self string
	t    Timing
	// floor is when the process started. What it acknowledged before a
	// restart is forgotten, so it acts as if it had acknowledged every
	// role's holder at that instant.
	floor time.Time
	roles map[string]*witnessed
}

// witnessed is the newest epoch a witness acknowledged for one role.
type witnessed struct {
	epoch    uint64
	node     string
	session  uint64    // newest session of node acknowledged at epoch
	seq      uint64    // newest round of that session acknowledged
	at       time.Time // last acknowledgement
	released bool      // session released the epoch
}

// NewWitness returns the witness of node self, in a process that started
// at now.
func NewWitness(self string, t Timing, now time.Time) *Witness {
	return &Witness{self: self, t: t, floor: now, roles: make(map[string]*witnessed)}
}

// Renew decides on one renewal, given this node's applied assignment of
// the role. It acknowledges only the holder and epoch that cur names, and
// a newer epoch than it acknowledged before only once its promise to the
// older one ran out (ErrBound) or was released. ErrStaleEpoch means the
// renewal does not match cur; ErrReleased that the epoch was given up.
func (w *Witness) Renew(r Renewal, cur Assignment, now time.Time) (Ack, error) {
	if r.Epoch == 0 || r.Role != cur.Role || r.Node != cur.Holder || r.Epoch != cur.Epoch {
		return Ack{}, fmt.Errorf("renew %s epoch %d for %s: this node has epoch %d held by %q: %w",
			r.Role, r.Epoch, r.Node, cur.Epoch, cur.Holder, ErrStaleEpoch)
	}
	rec := w.roles[r.Role]
	if rec != nil && rec.epoch == r.Epoch {
		switch {
		case rec.released:
			return Ack{}, fmt.Errorf("renew %s epoch %d for %s: %w", r.Role, r.Epoch, r.Node, ErrReleased)
		case r.Session < rec.session:
			// A renewal from a run of the node that has since restarted:
			// that run believes nothing any more.
			return Ack{}, fmt.Errorf("renew %s epoch %d for %s: session %d is older than %d: %w",
				r.Role, r.Epoch, r.Node, r.Session, rec.session, ErrStaleEpoch)
		case r.Session == rec.session && r.Seq <= rec.seq:
			// A round older than one already acknowledged, arriving late:
			// the holder does not need it, and acknowledging it would
			// only stretch the promise past what the holder relies on.
			return Ack{}, fmt.Errorf("renew %s epoch %d for %s: round %d is not newer than %d: %w",
				r.Role, r.Epoch, r.Node, r.Seq, rec.seq, ErrStaleEpoch)
		}
		rec.session, rec.seq = r.Session, r.Seq
		if now.After(rec.at) {
			rec.at = now
		}
		return Ack{Role: r.Role, Epoch: r.Epoch, Session: r.Session, Seq: r.Seq, From: w.self}, nil
	}
	if rec != nil && rec.epoch > r.Epoch {
		return Ack{}, fmt.Errorf("renew %s epoch %d for %s: already acknowledged epoch %d: %w",
			r.Role, r.Epoch, r.Node, rec.epoch, ErrStaleEpoch)
	}
	if free := w.FreeAt(r.Role, r.Epoch); now.Before(free) {
		return Ack{}, fmt.Errorf("renew %s epoch %d for %s: %w for %v more", r.Role, r.Epoch, r.Node, ErrBound, free.Sub(now))
	}
	w.roles[r.Role] = &witnessed{epoch: r.Epoch, node: r.Node, session: r.Session, seq: r.Seq, at: now}
	return Ack{Role: r.Role, Epoch: r.Epoch, Session: r.Session, Seq: r.Seq, From: w.self}, nil
}

// Release records that a holder gave an epoch up. It frees the promise
// only if it comes from the newest session this witness acknowledged for
// that very epoch: a release delayed in the network from an earlier run
// must not free a promise made to the current one.
func (w *Witness) Release(r Release) {
	if rec := w.roles[r.Role]; rec != nil && rec.epoch == r.Epoch && rec.node == r.Node && rec.session == r.Session {
		rec.released = true
	}
}

// FreeAt returns the earliest time at which this witness would acknowledge
// a holder of the role at epoch (the zero time if it would now, whatever
// now is). The leader waits for it before assigning the role, so that the
// name never points at a node that could not act yet.
func (w *Witness) FreeAt(role string, epoch uint64) time.Time {
	if epoch <= 1 {
		return time.Time{} // no earlier epoch, so no earlier holder to protect
	}
	rec := w.roles[role]
	if rec != nil && rec.epoch >= epoch {
		return time.Time{}
	}
	free := w.floor.Add(w.t.promise())
	if rec != nil && !rec.released {
		if until := rec.at.Add(w.t.promise()); until.After(free) {
			free = until
		}
	}
	return free
}
