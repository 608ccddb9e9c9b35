package store

import (
	"fmt"

	"github.com/miekg/dns"
)

// zoneSnapshot is a zone in a snapshot file: its canonical records and
// its IXFR history, as text. The serial is the SOA's.
type zoneSnapshot struct {
	Origin  string         `json:"origin"`
	Version uint64         `json:"version"`
	Records []string       `json:"records"`
	History []diffSnapshot `json:"history,omitempty"`
}

type diffSnapshot struct {
	From    string   `json:"from"` // SOA record before
	To      string   `json:"to"`   // SOA record after
	Deleted []string `json:"deleted,omitempty"`
	Added   []string `json:"added,omitempty"`
}

// snapshotZones returns the zones of s ordered by origin, so that equal
// states give equal snapshots.
func snapshotZones(s *State) []zoneSnapshot {
	var out []zoneSnapshot
	for _, z := range s.ZoneList() {
		zs := zoneSnapshot{Origin: z.Origin, Version: z.Version, Records: z.Records()}
		for _, d := range z.history {
			zs.History = append(zs.History, diffSnapshot{
				From: d.from.text, To: d.to.text,
				Deleted: texts(d.deleted), Added: texts(d.added),
			})
		}
		out = append(out, zs)
	}
	return out
}

func texts(rs []rec) []string {
	if len(rs) == 0 {
		return nil
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.text
	}
	return out
}

// restore rebuilds a zone with the checks a zone.put gets.
func (zs zoneSnapshot) restore() (*ZoneState, error) {
	d := ZoneData{Origin: zs.Origin, Records: zs.Records}
	if err := d.decode(); err != nil {
		return nil, fmt.Errorf("zone %s: %w", zs.Origin, err)
	}
	z := &ZoneState{Origin: d.Origin, Version: zs.Version, recs: d.recs}
	z.Serial = z.SOA().Serial
	parse := func(texts []string) ([]rec, error) {
		out := make([]rec, 0, len(texts))
		for _, t := range texts {
			rr, err := parseRecord(t)
			if err != nil {
				return nil, err
			}
			canonicalize(rr)
			out = append(out, newRec(rr))
		}
		return out, nil
	}
	prev, linked := uint32(0), false
	for i, ds := range zs.History {
		soas, err := parse([]string{ds.From, ds.To})
		if err != nil {
			return nil, fmt.Errorf("zone %s history %d: %w", z.Origin, i, err)
		}
		from, ok1 := soas[0].rr.(*dns.SOA)
		to, ok2 := soas[1].rr.(*dns.SOA)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("zone %s history %d: from and to must be SOA records", z.Origin, i)
		}
		if linked && from.Serial != prev {
			return nil, fmt.Errorf("zone %s history %d: starts at serial %d, the one before ends at %d", z.Origin, i, from.Serial, prev)
		}
		d := &zoneDiff{from: soas[0], to: soas[1]}
		if d.deleted, err = parse(ds.Deleted); err != nil {
			return nil, fmt.Errorf("zone %s history %d: %w", z.Origin, i, err)
		}
		if d.added, err = parse(ds.Added); err != nil {
			return nil, fmt.Errorf("zone %s history %d: %w", z.Origin, i, err)
		}
		z.history = append(z.history, d)
		prev, linked = to.Serial, true
	}
	if linked && prev != z.Serial {
		return nil, fmt.Errorf("zone %s: history ends at serial %d, the zone is at %d", z.Origin, prev, z.Serial)
	}
	return z, nil
}
