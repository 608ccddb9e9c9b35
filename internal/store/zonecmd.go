package store

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// ZoneData is the payload of zone.put: the whole content of one zone, which
// replaces what the zone held. Records are in presentation format, one
// record per string, with absolute names (what dns.RR.String gives).
type ZoneData struct {
	Origin  string   `json:"origin"`
	Records []string `json:"records"`

	// recs is the parsed, canonical, checked form, set by DecodeCommand.
	recs []rec
}

// ZoneUpdate is the payload of zone.update: an RFC 2136 update's
// prerequisite and update sections, each record in DNS wire format
// (dns.PackRR, uncompressed). Wire format because update records use
// classes ANY and NONE with empty rdata, which have no presentation form
// that parses back.
type ZoneUpdate struct {
	Origin  string   `json:"origin"`
	Prereq  [][]byte `json:"prereq,omitempty"`
	Updates [][]byte `json:"updates,omitempty"`

	// prereq and updates are the unpacked records, set by DecodeCommand.
	prereq, updates []dns.RR
}

// NewZonePut returns the zone.put command that replaces zone origin with
// rrs (which it does not modify). The SOA's serial is a proposal: the
// state machine raises it if needed so that every change increases it.
func NewZonePut(origin string, rrs []dns.RR) Command {
	d := &ZoneData{Origin: canonicalOrigin(origin), Records: make([]string, len(rrs))}
	for i, rr := range rrs {
		c := dns.Copy(rr)
		canonicalize(c)
		d.Records[i] = c.String()
	}
	return Command{Op: OpZonePut, Zone: d}
}

// NewZoneDrop returns the zone.drop command that removes zone origin.
func NewZoneDrop(origin string) Command {
	return Command{Op: OpZoneDrop, Origin: canonicalOrigin(origin)}
}

// NewZoneUpdate returns the zone.update command for an RFC 2136 update of
// zone origin: prereq is the message's prerequisite (answer) section,
// updates its update (authority) section.
func NewZoneUpdate(origin string, prereq, updates []dns.RR) (Command, error) {
	u := &ZoneUpdate{Origin: canonicalOrigin(origin)}
	pack := func(rrs []dns.RR) ([][]byte, error) {
		out := make([][]byte, 0, len(rrs))
		for _, rr := range rrs {
			buf := make([]byte, dns.Len(rr)+64)
			n, err := dns.PackRR(rr, buf, 0, nil, false)
			if err != nil {
				return nil, fmt.Errorf("pack %s: %w", rr.Header().Name, err)
			}
			out = append(out, buf[:n])
		}
		return out, nil
	}
	var err error
	if u.Prereq, err = pack(prereq); err != nil {
		return Command{}, fmt.Errorf("zone.update %s: %w", origin, err)
	}
	if u.Updates, err = pack(updates); err != nil {
		return Command{}, fmt.Errorf("zone.update %s: %w", origin, err)
	}
	return Command{Op: OpZoneUpdate, Update: u}, nil
}

// canonicalOrigin is dns.CanonicalName except that an empty origin stays
// empty (refused by DecodeCommand) rather than become the root.
func canonicalOrigin(origin string) string {
	if origin == "" {
		return ""
	}
	return dns.CanonicalName(origin)
}

// checkOrigin returns origin in canonical form or why it is no zone name.
func checkOrigin(origin string) (string, error) {
	if origin == "" {
		return "", fmt.Errorf("empty zone origin")
	}
	if _, ok := dns.IsDomainName(origin); !ok {
		return "", fmt.Errorf("zone origin %q is not a domain name", origin)
	}
	return dns.CanonicalName(origin), nil
}

// decode parses, canonicalizes and checks the records. A zone that decodes
// is one the state may hold.
func (d *ZoneData) decode() error {
	origin, err := checkOrigin(d.Origin)
	if err != nil {
		return err
	}
	d.Origin = origin
	if len(d.Records) > MaxZoneRecords {
		return fmt.Errorf("zone %s has %d records, the limit is %d", origin, len(d.Records), MaxZoneRecords)
	}
	rrs := make([]dns.RR, len(d.Records))
	for i, text := range d.Records {
		rr, err := parseRecord(text)
		if err != nil {
			return fmt.Errorf("zone %s: %w", origin, err)
		}
		canonicalize(rr)
		rrs[i] = rr
	}
	recs := normalize(rrs)
	if err := checkZone(origin, recs); err != nil {
		return err
	}
	d.recs = recs
	return nil
}

// parseRecord parses exactly one record in presentation format with an
// absolute owner name. Directives are refused: $INCLUDE would read a file
// of the node applying the entry.
func parseRecord(text string) (dns.RR, error) {
	if strings.ContainsAny(text, "\n\r") {
		return nil, fmt.Errorf("record %q spans lines", text)
	}
	if strings.HasPrefix(text, "$") {
		return nil, fmt.Errorf("record %q: directives are not records", text)
	}
	zp := dns.NewZoneParser(strings.NewReader(text), "", "")
	rr, ok := zp.Next()
	if !ok {
		if err := zp.Err(); err != nil {
			return nil, fmt.Errorf("record %q: %w", text, err)
		}
		return nil, fmt.Errorf("record %q: no record", text)
	}
	if _, more := zp.Next(); more || zp.Err() != nil {
		return nil, fmt.Errorf("record %q: more than one record", text)
	}
	return rr, nil
}

// decode unpacks the records and checks what RFC 2136 sections 3.2.1 and
// 3.4.1.3 make a FORMERR. What depends on the zone (NOTZONE, the
// prerequisites themselves) is checked when applying.
func (u *ZoneUpdate) decode() error {
	origin, err := checkOrigin(u.Origin)
	if err != nil {
		return err
	}
	u.Origin = origin
	if n := len(u.Prereq) + len(u.Updates); n > MaxUpdateRecords {
		return fmt.Errorf("update of %s has %d records, the limit is %d", origin, n, MaxUpdateRecords)
	}
	unpack := func(section string, bs [][]byte, check func(dns.RR) error) ([]dns.RR, error) {
		out := make([]dns.RR, 0, len(bs))
		for i, b := range bs {
			rr, off, err := dns.UnpackRR(b, 0)
			if err != nil {
				return nil, fmt.Errorf("%s record %d: %w", section, i, err)
			}
			if off != len(b) {
				return nil, fmt.Errorf("%s record %d: %d bytes after the record", section, i, len(b)-off)
			}
			if err := check(rr); err != nil {
				return nil, fmt.Errorf("%s record %d (%s): %w", section, i, strings.TrimSpace(rr.String()), err)
			}
			out = append(out, rr)
		}
		return out, nil
	}
	if u.prereq, err = unpack("prerequisite", u.Prereq, checkPrereq); err != nil {
		return err
	}
	if u.updates, err = unpack("update", u.Updates, checkUpdate); err != nil {
		return err
	}
	return nil
}

func checkPrereq(rr dns.RR) error {
	h := rr.Header()
	if h.Ttl != 0 {
		return fmt.Errorf("prerequisite with TTL %d, must be 0", h.Ttl)
	}
	switch h.Class {
	case dns.ClassANY, dns.ClassNONE:
		if h.Rdlength != 0 {
			return fmt.Errorf("class %s prerequisite with rdata", dns.Class(h.Class))
		}
		if isMetaType(h.Rrtype) && h.Rrtype != dns.TypeANY {
			return fmt.Errorf("prerequisite of type %s", dns.Type(h.Rrtype))
		}
	case dns.ClassINET:
		if isMetaType(h.Rrtype) {
			return fmt.Errorf("prerequisite of type %s", dns.Type(h.Rrtype))
		}
	default:
		return fmt.Errorf("prerequisite of class %s", dns.Class(h.Class))
	}
	return nil
}

func checkUpdate(rr dns.RR) error {
	h := rr.Header()
	switch h.Class {
	case dns.ClassINET:
		if isMetaType(h.Rrtype) {
			return fmt.Errorf("cannot add a record of type %s", dns.Type(h.Rrtype))
		}
		// What is added must survive a snapshot: its text must parse back.
		c := dns.Copy(rr)
		canonicalize(c)
		if !hasData(newRec(c)) {
			return fmt.Errorf("cannot add a record without data")
		}
		if _, err := parseRecord(c.String()); err != nil {
			return fmt.Errorf("unusable record: %w", err)
		}
	case dns.ClassANY:
		if h.Ttl != 0 || h.Rdlength != 0 {
			return fmt.Errorf("class ANY deletion needs TTL 0 and no rdata")
		}
		if isMetaType(h.Rrtype) && h.Rrtype != dns.TypeANY {
			return fmt.Errorf("cannot delete records of type %s", dns.Type(h.Rrtype))
		}
	case dns.ClassNONE:
		if h.Ttl != 0 {
			return fmt.Errorf("class NONE deletion needs TTL 0")
		}
		if isMetaType(h.Rrtype) {
			return fmt.Errorf("cannot delete a record of type %s", dns.Type(h.Rrtype))
		}
	default:
		return fmt.Errorf("update of class %s", dns.Class(h.Class))
	}
	return nil
}
