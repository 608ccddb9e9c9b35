package dnsserver

import (
	"context"

	"github.com/miekg/dns"
)

// Zone is one zone's content as the store holds it.
type Zone struct {
	Origin  string   // canonical: lowercase FQDN with trailing dot
	Serial  uint32   // the SOA serial the server must answer with
	Records []dns.RR // all records incl. exactly one SOA at the apex and the apex NS set
}

// Overlay is synthetic data merged into a zone at compile time, never stored in Raft:
// `<node>.nodes.<zone>` A/AAAA for every node's current address, `leader.<zone>`, later
// `<role>.<zone>`. Rebuilding a zone because the overlay changed must not re-parse the zone.
type Overlay struct {
	Records []dns.RR // names inside the zone
	TTL     uint32   // default TTL for overlay records (e.g. 5)
	// Empty lists names that exist with no records, so that they answer
	// NODATA rather than NXDOMAIN (a role with no holder). A name that
	// also has Records is not empty.
	Empty []string
}

// Source is what the server needs from the node for transfers and updates.
type Source interface {
	// Zone returns the current zone content (nil if unknown), for AXFR.
	Zone(origin string) *Zone
	// Changes returns the IXFR difference sequences from serial `from` to the current
	// serial, or ok=false if history does not reach back (then AXFR is used).
	Changes(origin string, from uint32) (diffs []Diff, ok bool)
	// Update applies an RFC 2136 update through Raft (forwarded to the leader) and returns
	// the rcode to answer with, only once committed. Prerequisites are checked atomically
	// in the state machine, not here.
	Update(ctx context.Context, origin string, prereq []dns.RR, updates []dns.RR) (rcode int, err error)
}

// Diff is one IXFR step (RFC 1995): the SOA at FromSerial with the records deleted, then the
// SOA at ToSerial with the records added.
type Diff struct {
	FromSOA, ToSOA *dns.SOA
	Deleted, Added []dns.RR
}
