package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"buoy/internal/zonefile"
)

const origin = "example.org."

func soa(serial uint32) string {
	return fmt.Sprintf("example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. %d 7200 3600 1209600 300", serial)
}

// baseZone is a small zone without its SOA.
var baseZone = []string{
	"example.org. 3600 IN NS ns1.example.org.",
	"example.org. 3600 IN NS ns2.example.org.",
	"example.org. 300 IN MX 10 mail.example.org.",
	"ns1.example.org. 300 IN A 192.0.2.1",
	"ns2.example.org. 300 IN A 192.0.2.2",
	"www.example.org. 300 IN A 192.0.2.10",
	"www.example.org. 300 IN A 192.0.2.11",
	"alias.example.org. 300 IN CNAME www.example.org.",
}

func mustRRs(t testing.TB, lines ...string) []dns.RR {
	t.Helper()
	out := make([]dns.RR, 0, len(lines))
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("NewRR(%q): %v", l, err)
		}
		out = append(out, rr)
	}
	return out
}

// canon returns lines in the store's canonical text form, sorted.
func canon(t testing.TB, lines ...string) []string {
	t.Helper()
	var out []string
	for _, rr := range mustRRs(t, lines...) {
		canonicalize(rr)
		out = append(out, rr.String())
	}
	slices.SortFunc(out, func(a, b string) int { return cmpRec(rec{text: a}, rec{text: b}) })
	return slices.Compact(out)
}

func putCmd(t testing.TB, o string, serial uint32, lines ...string) Command {
	t.Helper()
	return NewZonePut(o, mustRRs(t, append([]string{soa(serial)}, lines...)...))
}

// must applies cmds and fails the test on any error.
func must(t *testing.T, f *FSM, cmds ...Command) {
	t.Helper()
	for i, r := range applyAll(t, f, cmds...) {
		if r != nil {
			t.Fatalf("command %d (%s): %v", i, cmds[i].Op, r)
		}
	}
}

// withoutSOA returns the zone's records other than its SOA.
func withoutSOA(z *ZoneState) []string {
	var out []string
	for _, r := range z.recs {
		if r.rr.Header().Rrtype != dns.TypeSOA {
			out = append(out, r.text)
		}
	}
	return out
}

func TestZonePut(t *testing.T) {
	changed := append(slices.Clone(baseZone[:5]), "www.example.org. 300 IN A 192.0.2.99")
	tests := []struct {
		name        string
		first, next uint32 // SOA serials of the two puts
		nextRecords []string
		wantSerial  uint32
		wantSame    bool // the second put is a no-op: same ZoneState
	}{
		{"identical reload", 10, 10, baseZone, 10, true},
		{"identical reload with an older serial", 10, 9, baseZone, 10, true},
		{"serial only moved ahead", 10, 11, baseZone, 11, false},
		{"change, file serial kept", 10, 10, changed, 11, false},
		{"change, file serial ahead", 10, 2026110100, changed, 2026110100, false},
		{"change, file serial behind", 10, 3, changed, 11, false},
		{"change at the end of serial space", 0xFFFFFFFF, 0xFFFFFFFF, changed, 0, false},
		{"file serial ahead across the wrap", 0xFFFFFFF0, 5, changed, 5, false},
		{"file serial far behind across the wrap", 5, 0xFFFFFFF0, changed, 6, false},
		{"file serial at the undefined distance", 0, 0x80000000, changed, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFSM(nil)
			must(t, f, putCmd(t, origin, tt.first, baseZone...))
			before := f.View().Zone(origin)
			if before.Serial != tt.first {
				t.Fatalf("first put: serial %d, want %d", before.Serial, tt.first)
			}
			must(t, f, putCmd(t, origin, tt.next, tt.nextRecords...))
			z := f.View().Zone(origin)
			if z.Serial != tt.wantSerial || z.SOA().Serial != tt.wantSerial {
				t.Errorf("serial = %d (SOA %d), want %d", z.Serial, z.SOA().Serial, tt.wantSerial)
			}
			if same := z == before; same != tt.wantSame {
				t.Errorf("ZoneState shared = %v, want %v", same, tt.wantSame)
			}
			if got, want := withoutSOA(z), canon(t, tt.nextRecords...); !slices.Equal(got, want) {
				t.Errorf("records = %q, want %q", got, want)
			}
			if !tt.wantSame && z.Version != f.View().Index {
				t.Errorf("Version = %d, want the index %d", z.Version, f.View().Index)
			}
			if before.Serial != tt.first || len(withoutSOA(before)) != len(baseZone) {
				t.Error("the old ZoneState changed")
			}
		})
	}
}

func TestZonePutRemovalsAndDiff(t *testing.T) {
	f := NewFSM(nil)
	must(t, f, putCmd(t, origin, 10, baseZone...))
	next := append(slices.Clone(baseZone[:6]), "new.example.org. 60 IN TXT \"hello\"")
	must(t, f, putCmd(t, origin, 10, next...))
	z := f.View().Zone(origin)
	diffs, ok := z.Changes(10)
	if !ok || len(diffs) != 1 {
		t.Fatalf("Changes(10) = %d diffs, %v; want 1, true", len(diffs), ok)
	}
	d := diffs[0]
	if d.FromSOA.Serial != 10 || d.ToSOA.Serial != 11 {
		t.Errorf("diff serials %d -> %d, want 10 -> 11", d.FromSOA.Serial, d.ToSOA.Serial)
	}
	if got, want := rrTexts(d.Deleted), canon(t, baseZone[6:]...); !slices.Equal(got, want) {
		t.Errorf("deleted = %q, want %q", got, want)
	}
	if got, want := rrTexts(d.Added), canon(t, "new.example.org. 60 IN TXT \"hello\""); !slices.Equal(got, want) {
		t.Errorf("added = %q, want %q", got, want)
	}
	for _, rr := range z.RRs() {
		if strings.HasPrefix(rr.Header().Name, "alias.") {
			t.Errorf("record removed from the file still served: %s", rr)
		}
	}
}

func rrTexts(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	return out
}

func TestZonePutCanonicalForm(t *testing.T) {
	f := NewFSM(nil)
	must(t, f, putCmd(t, "Example.ORG", 1,
		"WWW.Example.Org. 300 IN A 192.0.2.1",
		"www.example.org. 60 IN A 192.0.2.2",
		"www.example.org. 300 IN A 192.0.2.1", // duplicate
		"Mail.example.org. 300 IN MX 10 MX1.Example.Org.",
		"txt.example.org. 300 IN TXT \"Case Kept\"",
	))
	z := f.View().Zone("EXAMPLE.org")
	if z == nil {
		t.Fatal("Zone is not found case-insensitively")
	}
	want := []string{
		"mail.example.org.\t300\tIN\tMX\t10 mx1.example.org.",
		"txt.example.org.\t300\tIN\tTXT\t\"Case Kept\"",
		"www.example.org.\t60\tIN\tA\t192.0.2.1", // lowest TTL of the RRset
		"www.example.org.\t60\tIN\tA\t192.0.2.2",
	}
	if got := withoutSOA(z); !slices.Equal(got, want) {
		t.Errorf("records = %q, want %q", got, want)
	}
	if z.Origin != origin {
		t.Errorf("Origin = %q, want %q", z.Origin, origin)
	}
}

func TestZonePutRefused(t *testing.T) {
	tests := []struct {
		name  string
		cmd   Command
		wantS string // in the error
	}{
		{"no SOA", NewZonePut(origin, mustRRs(t, baseZone...)), "no SOA"},
		{"two SOAs", putCmd(t, origin, 1, strings.Replace(soa(2), "ns1.", "ns2.", 1)), "2 SOA"},
		{"SOA below the apex", NewZonePut(origin, mustRRs(t, strings.Replace(soa(1), "example.org. 3600", "sub.example.org. 3600", 1))), "not at the zone apex"},
		{"record outside the zone", putCmd(t, origin, 1, "www.example.net. 300 IN A 192.0.2.1"), "outside the zone"},
		{"parent of the zone", putCmd(t, origin, 1, "org. 300 IN A 192.0.2.1"), "outside the zone"},
		{"CNAME and other data", putCmd(t, origin, 1, "a.example.org. 300 IN CNAME b.example.org.", "a.example.org. 300 IN TXT \"x\""), "CNAME and other data"},
		{"two CNAMEs", putCmd(t, origin, 1, "a.example.org. 300 IN CNAME b.example.org.", "a.example.org. 300 IN CNAME c.example.org."), "more than one CNAME"},
		{"class CH", putCmd(t, origin, 1, `a.example.org. 300 CH TXT "x"`), "class"},
		{"bad origin", NewZoneDrop(""), "empty zone origin"},
		{"directive as a record", Command{Op: OpZonePut, Zone: &ZoneData{Origin: origin, Records: []string{soa(1), "$INCLUDE /etc/passwd"}}}, "directive"},
		{"two records in one", Command{Op: OpZonePut, Zone: &ZoneData{Origin: origin, Records: []string{soa(1), "a.example.org. 1 IN A 192.0.2.1\nb.example.org. 1 IN A 192.0.2.2"}}}, "spans lines"},
		{"relative name", Command{Op: OpZonePut, Zone: &ZoneData{Origin: origin, Records: []string{soa(1), "a 1 IN A 192.0.2.1"}}}, "bad owner"},
		{"no zone", Command{Op: OpZonePut}, "without zone"},
		{"record without data", NewZonePut(origin, append(mustRRs(t, soa(1)), &dns.A{Hdr: dns.RR_Header{Name: "a.example.org.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}})), "a.example.org."},
		{"too many records", Command{Op: OpZonePut, Zone: &ZoneData{Origin: origin, Records: make([]string, MaxZoneRecords+1)}}, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.cmd.Encode()
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecodeCommand(b)
			if !errors.Is(err, ErrBadCommand) || !strings.Contains(err.Error(), tt.wantS) {
				t.Errorf("DecodeCommand = %v, want ErrBadCommand mentioning %q", err, tt.wantS)
			}
		})
	}
	t.Run("oversize entry", func(t *testing.T) {
		if _, err := DecodeCommand(make([]byte, MaxCommandBytes+1)); !errors.Is(err, ErrBadCommand) || !strings.Contains(err.Error(), "limit") {
			t.Errorf("DecodeCommand(%d bytes) = %v, want ErrBadCommand about the limit", MaxCommandBytes+1, err)
		}
	})
}

func TestZoneDrop(t *testing.T) {
	f := NewFSM(nil)
	must(t, f,
		putCmd(t, origin, 1, baseZone...),
		NewZonePut("example.net.", mustRRs(t, "example.net. 300 IN SOA ns.example.net. h.example.net. 1 2 3 4 5")),
	)
	before := f.View()
	must(t, f, NewZoneDrop("Example.Org"))
	after := f.View()
	if after.Zone(origin) != nil {
		t.Error("dropped zone still present")
	}
	if before.Zone(origin) == nil {
		t.Error("drop changed the old view")
	}
	changed, dropped := after.ZonesChanged(before)
	if len(changed) != 0 || !slices.Equal(dropped, []string{origin}) {
		t.Errorf("ZonesChanged = %q, %q; want none, [%s]", changed, dropped, origin)
	}
	// A retried drop finds the zone gone and succeeds.
	must(t, f, NewZoneDrop(origin))
}

func TestUnchangedZonesShared(t *testing.T) {
	f := NewFSM(nil)
	net := NewZonePut("example.net.", mustRRs(t, "example.net. 300 IN SOA ns.example.net. h.example.net. 1 2 3 4 5"))
	must(t, f, putCmd(t, origin, 1, baseZone...), net)
	v1 := f.View()
	if c, d := v1.ZonesChanged(nil); !slices.Equal(c, []string{"example.net.", origin}) || d != nil {
		t.Errorf("ZonesChanged(nil) = %q, %q", c, d)
	}
	must(t, f, updateCmd(t, origin, nil, []dns.RR{add(t, "new.example.org. 300 IN A 192.0.2.5")}))
	v2 := f.View()
	if v2.Zone("example.net.") != v1.Zone("example.net.") {
		t.Error("unchanged zone was copied, not shared")
	}
	if v2.Zone(origin) == v1.Zone(origin) {
		t.Error("changed zone kept its ZoneState")
	}
	if c, d := v2.ZonesChanged(v1); !slices.Equal(c, []string{origin}) || d != nil {
		t.Errorf("ZonesChanged = %q, %q; want [%s], none", c, d, origin)
	}
	if slices.Contains(v1.Zone(origin).Records(), canon(t, "new.example.org. 300 IN A 192.0.2.5")[0]) {
		t.Error("the old view sees the update")
	}
	// An update that changes nothing publishes no new ZoneState.
	must(t, f, updateCmd(t, origin, nil, []dns.RR{add(t, "new.example.org. 300 IN A 192.0.2.5")}))
	if f.View().Zone(origin) != v2.Zone(origin) {
		t.Error("a no-op update replaced the ZoneState")
	}
}

func TestRcode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, dns.RcodeSuccess},
		{fmt.Errorf("x: %w", ErrUpdateNXDomain), dns.RcodeNameError},
		{ErrUpdateYXDomain, dns.RcodeYXDomain},
		{ErrUpdateNXRRSet, dns.RcodeNXRrset},
		{ErrUpdateYXRRSet, dns.RcodeYXRrset},
		{ErrUpdateNotZone, dns.RcodeNotZone},
		{ErrZoneUnknown, dns.RcodeNotAuth},
		{ErrZoneTooLarge, dns.RcodeRefused},
		{FromCode(Code(ErrBadCommand), "bad command: x"), dns.RcodeFormatError},
		{FromCode(Code(ErrUpdateYXRRSet), "remote"), dns.RcodeYXRrset},
		{ErrNoLeader, dns.RcodeServerFailure},
		{errors.New("timeout"), dns.RcodeServerFailure},
	}
	for _, tt := range tests {
		if got := Rcode(tt.err); got != tt.want {
			t.Errorf("Rcode(%v) = %s, want %s", tt.err, dns.RcodeToString[got], dns.RcodeToString[tt.want])
		}
	}
}

func TestSerialGreater(t *testing.T) {
	tests := []struct {
		a, b uint32
		want bool
	}{
		{2, 1, true},
		{1, 2, false},
		{1, 1, false},
		{0, 0xFFFFFFFF, true},
		{0xFFFFFFFF, 0, false},
		{0x7FFFFFFF, 0, true},
		{0x80000000, 0, false}, // undefined: neither is greater
		{0, 0x80000000, false},
	}
	for _, tt := range tests {
		if got := serialGreater(tt.a, tt.b); got != tt.want {
			t.Errorf("serialGreater(%#x, %#x) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestZoneHistory(t *testing.T) {
	f := NewFSM(nil)
	must(t, f, putCmd(t, origin, 100, baseZone...))
	for i := range MaxHistoryDiffs + 5 {
		must(t, f, updateCmd(t, origin, nil, []dns.RR{add(t, fmt.Sprintf("h%d.example.org. 300 IN A 192.0.2.7", i))}))
	}
	z := f.View().Zone(origin)
	if z.Serial != 100+MaxHistoryDiffs+5 || z.HistoryLen() != MaxHistoryDiffs {
		t.Fatalf("serial %d, history %d; want %d, %d", z.Serial, z.HistoryLen(), 100+MaxHistoryDiffs+5, MaxHistoryDiffs)
	}
	tests := []struct {
		from   uint32
		wantOK bool
		wantN  int
	}{
		{z.Serial, true, 0},
		{z.Serial - 1, true, 1},
		{z.Serial - MaxHistoryDiffs, true, MaxHistoryDiffs},
		{z.Serial - MaxHistoryDiffs - 1, false, 0}, // fell out of the history
		{100, false, 0},
		{z.Serial + 1, false, 0},
	}
	for _, tt := range tests {
		diffs, ok := z.Changes(tt.from)
		if ok != tt.wantOK || len(diffs) != tt.wantN {
			t.Errorf("Changes(%d) = %d diffs, %v; want %d, %v", tt.from, len(diffs), ok, tt.wantN, tt.wantOK)
			continue
		}
		for i, d := range diffs {
			if d.FromSOA.Serial != tt.from+uint32(i) || d.ToSOA.Serial != tt.from+uint32(i)+1 || len(d.Added) != 1 || len(d.Deleted) != 0 {
				t.Errorf("Changes(%d)[%d] = %d -> %d, -%d +%d", tt.from, i, d.FromSOA.Serial, d.ToSOA.Serial, len(d.Deleted), len(d.Added))
			}
		}
	}
	// Changes hands out copies.
	diffs, _ := z.Changes(z.Serial - 1)
	diffs[0].Added[0].Header().Ttl = 1
	if again, _ := z.Changes(z.Serial - 1); again[0].Added[0].Header().Ttl != 300 {
		t.Error("a caller's change to a diff reached the state")
	}

	// A change bigger than the record bound clears the history.
	var many []string
	for i := range MaxHistoryRecords + 1 {
		many = append(many, fmt.Sprintf("m%d.example.org. 300 IN A 192.0.2.8", i))
	}
	must(t, f, putCmd(t, origin, 1, many...))
	z = f.View().Zone(origin)
	if _, ok := z.Changes(z.Serial - 1); ok || z.HistoryLen() != 0 {
		t.Errorf("after a %d-record change: history %d, Changes ok %v; want 0, false", MaxHistoryRecords+1, z.HistoryLen(), ok)
	}
	must(t, f, updateCmd(t, origin, nil, []dns.RR{add(t, "last.example.org. 300 IN A 192.0.2.9")}))
	if diffs, ok := f.View().Zone(origin).Changes(z.Serial); !ok || len(diffs) != 1 {
		t.Errorf("history does not restart after being cleared: %d diffs, %v", len(diffs), ok)
	}
}

func TestAppendHistoryRecordBound(t *testing.T) {
	mk := func(n int) *zoneDiff { return &zoneDiff{added: make([]rec, n)} }
	h := appendHistory(nil, mk(4000))
	h = appendHistory(h, mk(4000))
	h = appendHistory(h, mk(3000)) // 11,000 in all: the oldest goes
	if len(h) != 2 || h[0].size() != 4000 || h[1].size() != 3000 {
		t.Errorf("history sizes after the bound: %d diffs", len(h))
	}
}

func TestZoneSnapshotRoundTrip(t *testing.T) {
	f := NewFSM(nil)
	must(t, f,
		putCmd(t, origin, 5, baseZone...),
		NewZonePut("example.net.", mustRRs(t, "example.net. 300 IN SOA ns.example.net. h.example.net. 1 2 3 4 5", "example.net. 300 IN TXT \"a;b\" \"c\\\"d\"")),
		updateCmd(t, origin, nil, []dns.RR{add(t, "x.example.org. 300 IN AAAA 2001:db8::1")}),
		updateCmd(t, origin, nil, []dns.RR{delRRset(t, "www.example.org.", dns.TypeA)}),
	)
	persist := func(f *FSM) []byte {
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var sink memSink
		if err := snap.Persist(&sink); err != nil {
			t.Fatal(err)
		}
		return sink.Bytes()
	}
	b := persist(f)
	if again := persist(f); !bytes.Equal(b, again) {
		t.Error("two snapshots of one state differ")
	}
	g := NewFSM(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	if again := persist(g); !bytes.Equal(b, again) {
		t.Errorf("snapshot of the restored state differs:\n%s\n%s", b, again)
	}
	for _, o := range []string{origin, "example.net."} {
		a, r := f.View().Zone(o), g.View().Zone(o)
		if r == nil || a.Serial != r.Serial || a.Version != r.Version || !slices.Equal(a.Records(), r.Records()) {
			t.Fatalf("zone %s restored as %+v, want %+v", o, r, a)
		}
		if got, want := rrTexts(r.RRs()), a.Records(); !slices.Equal(got, want) {
			t.Errorf("restored RRs = %q, want %q", got, want)
		}
	}
	da, _ := f.View().Zone(origin).Changes(5)
	dr, ok := g.View().Zone(origin).Changes(5)
	if !ok || len(dr) != 2 || len(da) != 2 {
		t.Fatalf("restored Changes(5) = %d diffs, %v; want 2", len(dr), ok)
	}
	for i := range da {
		if da[i].ToSOA.Serial != dr[i].ToSOA.Serial || !slices.Equal(rrTexts(da[i].Deleted), rrTexts(dr[i].Deleted)) || !slices.Equal(rrTexts(da[i].Added), rrTexts(dr[i].Added)) {
			t.Errorf("restored diff %d differs: %v vs %v", i, dr[i], da[i])
		}
	}
	// The restored state goes on like the original.
	up := updateCmd(t, origin, nil, []dns.RR{add(t, "y.example.org. 300 IN A 192.0.2.3")})
	must(t, f, up)
	must(t, g, up)
	if a, r := f.View().Zone(origin), g.View().Zone(origin); a.Serial != r.Serial || !slices.Equal(a.Records(), r.Records()) {
		t.Error("original and restored state diverge after one more update")
	}

	t.Run("version 1 snapshot", func(t *testing.T) {
		h := NewFSM(nil)
		if err := h.Restore(io.NopCloser(strings.NewReader(`{"version":1,"index":7,"members":{},"tokens":{}}`))); err != nil {
			t.Fatalf("Restore(v1) = %v", err)
		}
		if h.View().Index != 7 || len(h.View().Zones) != 0 {
			t.Errorf("v1 restore: index %d, %d zones", h.View().Index, len(h.View().Zones))
		}
	})
	t.Run("broken zone refused", func(t *testing.T) {
		h := NewFSM(nil)
		bad := bytes.Replace(b, []byte("IN\\tSOA"), []byte("IN\\tSOX"), 1)
		if err := h.Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
			t.Error("Restore accepted a zone with a broken SOA")
		}
	})
}

// TestCanonicalTextRoundTrips: the text a zone stores must parse back to
// the same record, or a restored node would serve something else.
func TestCanonicalTextRoundTrips(t *testing.T) {
	for _, l := range []string{
		"a.example.org. 300 IN A 192.0.2.1",
		"a.example.org. 300 IN AAAA 2001:db8::1",
		"a.example.org. 300 IN CNAME B.example.org.",
		"a.example.org. 300 IN MX 10 Mail.example.org.",
		`a.example.org. 300 IN TXT "semi;colon" "quote\"d" "tab\009" "ünï"`,
		"a.example.org. 300 IN SRV 0 5 5060 sip.example.org.",
		"a.example.org. 300 IN NS ns.example.org.",
		"a.example.org. 300 IN PTR host.example.org.",
		`a.example.org. 300 IN CAA 0 issue "letsencrypt.org"`,
		`a.example.org. 300 IN NAPTR 100 10 "U" "E2U+sip" "!^.*$!sip:info@example.org!" .`,
		"a.example.org. 300 IN SSHFP 1 1 0123456789abcdef0123456789abcdef01234567",
		"a.example.org. 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"a.example.org. 300 IN DS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118",
		"a.example.org. 300 IN HTTPS 1 . alpn=h2,h3 ipv4hint=192.0.2.1",
		"a.example.org. 300 IN SVCB 1 svc.example.org. port=8443",
		"a.example.org. 300 IN LOC 52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m",
		`a.example.org. 300 IN HINFO "cpu" "os"`,
		"a.example.org. 300 IN TYPE65280 \\# 3 abcdef",
		"a\\.b.example.org. 300 IN A 192.0.2.1",
		"*.example.org. 300 IN A 192.0.2.1",
	} {
		rr := mustRRs(t, l)[0]
		canonicalize(rr)
		text := rr.String()
		back, err := parseRecord(text)
		if err != nil {
			t.Errorf("parseRecord(%q) = %v", text, err)
			continue
		}
		canonicalize(back)
		if back.String() != text {
			t.Errorf("round trip of %q gives %q", text, back.String())
		}
	}
}

func TestLimitsAgree(t *testing.T) {
	if zonefile.MaxRecords != MaxZoneRecords {
		t.Errorf("zonefile.MaxRecords = %d, store.MaxZoneRecords = %d: a loaded file could be refused by the store", zonefile.MaxRecords, MaxZoneRecords)
	}
}

// TestZoneFileToStore loads a file and puts it, as the node does on a
// reload: a record removed from the file disappears, the serial moves on.
func TestZoneFileToStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "example.zone")
	write := func(body string) {
		t.Helper()
		text := "$ORIGIN Example.ORG.\n$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n" + body
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := NewFSM(nil)
	load := func() {
		t.Helper()
		rrs, err := zonefile.Load(path, "example.org.", 0)
		if err != nil {
			t.Fatal(err)
		}
		must(t, f, NewZonePut("example.org.", rrs))
	}
	write("WWW IN A 192.0.2.10\nold IN TXT \"bye\"\n")
	load()
	write("WWW IN A 192.0.2.10\n")
	load()
	z := f.View().Zone(origin)
	want := canon(t, "example.org. 300 IN NS ns1.example.org.", "ns1.example.org. 300 IN A 192.0.2.1", "www.example.org. 300 IN A 192.0.2.10")
	if got := withoutSOA(z); !slices.Equal(got, want) || z.Serial != 8 {
		t.Errorf("after the reload: serial %d, records %q; want 8, %q", z.Serial, got, want)
	}
	load() // unchanged file: nothing happens
	if f.View().Zone(origin) != z {
		t.Error("reloading an unchanged file changed the zone")
	}
}
