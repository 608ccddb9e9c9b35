package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"
	"time"

	"buoy/internal/wire"
)

// FuzzParseRecord: any wire record either is refused with ErrMalformed or
// parses into a valid record that encodes back to the very bytes signed.
func FuzzParseRecord(f *testing.F) {
	f.Add("pi2", uint64(3), "198.51.100.50:7300", "[2001:db8::2]:7300", "192.0.2.11:7300", "cone", uint16(7300), int64(1))
	f.Add("pi2", uint64(1), "[::ffff:1.2.3.4]:1", "", "[fe80::1%eth0]:7300", "", uint16(0), int64(-1))
	f.Add("a", uint64(0), "1.2.3.4:07300", "1.2.3.4:7300", "", "x", uint16(1), int64(1<<62))
	f.Fuzz(func(t *testing.T, node string, inc uint64, a1, a2, lan, nat string, port uint16, issued int64) {
		w := wire.AddressRecord{Node: node, Incarnation: inc, NAT: nat, Port: port, Issued: issued}
		for _, a := range []string{a1, a2} {
			if a != "" {
				w.Addrs = append(w.Addrs, a)
			}
		}
		if lan != "" {
			w.LAN = []string{lan}
		}
		r, err := ParseRecord(w)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseRecord(%+v) = %v, want ErrMalformed", w, err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRecord(%+v) returned an invalid record: %v", w, err)
		}
		if !bytes.Equal(r.Wire().SigningBytes(), w.SigningBytes()) {
			t.Fatalf("ParseRecord(%+v).Wire() = %+v: signed bytes differ", w, r.Wire())
		}
	})
}

// FuzzObservationFromHeartbeat: no heartbeat crashes the vote, and an
// accepted observation from a single peer is its view.
func FuzzObservationFromHeartbeat(f *testing.F) {
	f.Add("198.51.100.50:40000", "192.0.2.10:7300", "203.0.113.1:7300", true)
	f.Add("[::ffff:127.0.0.1]:1", "127.0.0.1:1", "", false)
	f.Add("[fe80::1%eth0]:1", "[fe80::2%eth0]:7300", "[::1]:1", true)
	f.Add("100.64.0.1:1", "100.64.0.2:2", "x", false)
	f.Fuzz(func(t *testing.T, youAre, local, remote string, outbound bool) {
		l, _ := netip.ParseAddrPort(local)
		r, _ := netip.ParseAddrPort(remote)
		o, err := ObservationFromHeartbeat("peer", wire.Heartbeat{YouAre: youAre}, l, r, outbound, t0)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrImplausible) {
				t.Fatalf("ObservationFromHeartbeat(%q) = %v, want ErrMalformed or ErrImplausible", youAre, err)
			}
			return
		}
		s := NewSelf(SelfConfig{})
		if _, err := s.Observe(o); err != nil {
			t.Fatalf("Observe(ObservationFromHeartbeat(%q)) = %v", youAre, err)
		}
		if got := s.Address(FamilyOf(o.Seen.Addr())); got != o.Seen.Addr() {
			t.Fatalf("Address after the only observation %v = %v", o.Seen, got)
		}
		if n := s.NAT(t0); n == "" {
			t.Fatal("NAT() is empty")
		}
		if _, err := ObservationFromHeartbeat("peer", wire.Heartbeat{YouAre: o.Seen.String()}, o.Local, o.Remote, outbound, t0); err != nil {
			t.Fatalf("canonical observation %v refused: %v", o, err)
		}
	})
}

// FuzzMergeControl feeds decoded control frames to a Book: nothing
// crashes, nothing unsigned is kept.
func FuzzMergeControl(f *testing.F) {
	keys := newKeyring("pi1", "pi2")
	sr := keys.sign(f, pi2Record(3))
	for _, m := range []wire.ControlMsg{
		{Type: wire.ControlHeartbeat, Heartbeat: &wire.Heartbeat{Seq: 1, YouAre: "198.51.100.50:1", Record: &sr}},
		{Type: wire.ControlRecordPush, Push: &wire.RecordPush{Records: []wire.SignedRecord{sr, sr}}},
	} {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte(`{"type":"push","push":{"records":[{"record":{"node":"pi2","inc":1,"issued":1},"sig":"AAAA"}]}}`))
	verify := keys.verifier()
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := wire.DecodeControl(body)
		if err != nil {
			return
		}
		var recs []wire.SignedRecord
		if m.Heartbeat != nil && m.Heartbeat.Record != nil {
			recs = append(recs, *m.Heartbeat.Record)
		}
		if m.Push != nil {
			recs = append(recs, m.Push.Records...)
		}
		b, err := NewBook(BookConfig{Self: "pi1", Verify: verify})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			rec, out, err := b.Merge(r, t0.Add(time.Duration(i)*time.Second))
			if (err != nil) != (out == Refused) {
				t.Fatalf("Merge = %v, %v: an error exactly when refused", out, err)
			}
			if out == Accepted {
				if _, err := VerifyRecord(r, verify); err != nil {
					t.Fatalf("Merge accepted a record that does not verify: %v", err)
				}
				if held, ok := b.Record(rec.Node); !ok || !held.Equal(rec) {
					t.Fatalf("Merge accepted %+v but holds %+v", rec, held)
				}
			}
			_ = b.Candidates(rec.Node, t0)
		}
	})
}
