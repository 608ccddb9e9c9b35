package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestDNS drives Buoy's authoritative DNS with real clients against a
// cluster of three real agents: dig (UDP, TCP, +norec, TC then TCP retry),
// nsupdate with TSIG, kdig (AXFR, IXFR with TSIG) and Knot (knotd) as a
// real secondary pulling the zone and following NOTIFY. A zone file loaded
// on one node (n3, with --zone-file) must be answered identically by all
// three, follow edits on SIGHUP and "buoy zone reload", survive a broken
// edit, and take RFC 2136 updates sent to a follower.
//
// The subtests share the cluster and run in order: each starts from the
// state the previous one left.
func TestDNS(t *testing.T) {
	tool(t, "dig") // every part needs it

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	key := tsigKey{name: "e2e-key", secret: base64.StdEncoding.EncodeToString(secret)}

	zone := &zoneFile{path: filepath.Join(t.TempDir(), "example.test.zone"), records: exampleZone()}
	zone.write(t)

	// Knot's port is fixed before the cluster starts: every node is told to
	// NOTIFY it (the leader does, whichever node that is). Until knotd
	// runs, those NOTIFYs go unanswered, which the agents only log.
	knotAddr := freeDNSAddr(t)
	common := []string{"--tsig-key", key.name + ":hmac-sha256:" + key.secret, "--notify", knotAddr}

	c := newCluster(t)
	n1 := c.startDNS("n1", slices.Concat(common, []string{"--bootstrap"})...)
	c.waitHealthy(1, n1.node)
	tok := n1.createToken("--description", "dns e2e")
	join := []string{"--join", n1.peerAddr, "--token", tok.Token}
	n2 := c.startDNS("n2", slices.Concat(common, join)...)
	// The zone file is on n3 alone: its load goes through Raft to all.
	n3 := c.startDNS("n3", slices.Concat(common, join, []string{"--zone-file", zone.path})...)
	nodes := []*dnsAgent{n1, n2, n3}
	c.waitHealthy(3, n1.node, n2.node, n3.node)
	d := &dnsTest{c: c, nodes: nodes, holder: n3, zone: zone, key: key, knotAddr: knotAddr}

	d.run(t, "same answers on every node", d.sameAnswers)
	d.run(t, "SIGHUP drops a deleted record", d.sighupDelete)
	d.run(t, "buoy zone reload", d.apiReload)
	d.run(t, "broken file keeps the last good zone", d.brokenFile)
	d.run(t, "nsupdate with TSIG through a follower", d.update)
	d.run(t, "AXFR and IXFR with TSIG", d.transfers)
	d.run(t, "knotd secondary follows NOTIFY", d.secondary)
	d.run(t, "TC over UDP then TCP retry", d.truncation)
}

// tsigKey is the cluster's TSIG key: an hmac-sha256 secret, base64.
type tsigKey struct{ name, secret string }

// arg is the key as dig, kdig and nsupdate take it with -y.
func (k tsigKey) arg() string { return "hmac-sha256:" + k.name + ":" + k.secret }

// dnsTest is the state the subtests of TestDNS share.
type dnsTest struct {
	c        *cluster
	nodes    []*dnsAgent
	holder   *dnsAgent // the node started with --zone-file
	zone     *zoneFile
	key      tsigKey
	knotAddr string

	// serialBeforeEdits is the zone's serial before the first edit of the
	// file, recorded by sighupDelete for the IXFR in transfers.
	serialBeforeEdits uint32
}

// run runs one subtest, with the cluster's helpers reporting to it.
func (d *dnsTest) run(t *testing.T, name string, f func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		defer d.c.use(t)()
		f(t)
	})
}

// exampleZone is the zone file's records, one per line, after its $ORIGIN
// example.test. and $TTL 300 lines. big has a TXT RRset too large for a
// 1232-byte UDP answer.
func exampleZone() []string {
	rrs := []string{
		"@ IN SOA ns1.example.test. hostmaster.example.test. 2024010101 3600 600 86400 60",
		"@ IN NS ns1",
		"ns1 IN A 192.0.2.1",
		"@ IN MX 10 mail",
		"mail IN A 192.0.2.25",
		"mail IN AAAA 2001:db8::25",
		"www IN A 192.0.2.80",
		"www IN A 192.0.2.81",
		"alias IN CNAME www",
		"*.wild IN A 192.0.2.99",
		"*.wild IN TXT \"wildcard\"",
		"gone IN A 192.0.2.66",
		"gone2 IN A 192.0.2.67",
	}
	for i := range 60 {
		rrs = append(rrs, fmt.Sprintf("big IN TXT \"record %02d of a set too large for one UDP answer\"", i))
	}
	return rrs
}

// zoneFile is the master file on the holder node, rewritten by the
// subtests.
type zoneFile struct {
	path    string
	records []string
}

const zoneHeader = "$ORIGIN example.test.\n$TTL 300\n"

// write writes the file with its current records.
func (z *zoneFile) write(t *testing.T) {
	t.Helper()
	z.writeWith(t, "")
}

// writeWith writes the file with one more line at the end (when extra is
// not empty) and returns that line's number.
func (z *zoneFile) writeWith(t *testing.T, extra string) int {
	t.Helper()
	text := zoneHeader + strings.Join(z.records, "\n") + "\n"
	line := 0
	if extra != "" {
		text += extra + "\n"
		line = strings.Count(text, "\n")
	}
	if err := os.WriteFile(z.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return line
}

// remove drops the records starting with prefix; there must be some.
func (z *zoneFile) remove(t *testing.T, prefix string) {
	t.Helper()
	n := len(z.records)
	z.records = slices.DeleteFunc(z.records, func(r string) bool { return strings.HasPrefix(r, prefix) })
	if len(z.records) == n {
		t.Fatalf("zone file has no record starting %q", prefix)
	}
}

// query is one question and the answer every node must give. Records are
// matched by prefix, case-insensitively (a server may answer with the
// question's case or the zone's): answer must match exactly these, one
// each; authority and additional must contain these, maybe more.
type query struct {
	name, qtype string
	status      string
	answer      []string
	authority   []string
	additional  []string
}

// check compares r with q.
func (q query) check(r reply) error {
	if r.status != q.status {
		return fmt.Errorf("status %s, want %s", r.status, q.status)
	}
	if q.status != "REFUSED" && !slices.Contains(r.flags, "aa") {
		return fmt.Errorf("flags %v, want aa (authoritative)", r.flags)
	}
	if slices.Contains(r.flags, "ra") {
		return fmt.Errorf("flags %v, want no ra (never recursive)", r.flags)
	}
	if len(r.answer) != len(q.answer) {
		return fmt.Errorf("answer %q, want %d records matching %q", r.answer, len(q.answer), q.answer)
	}
	for what, want := range map[string][2][]string{
		"answer":     {q.answer, r.answer},
		"authority":  {q.authority, r.authority},
		"additional": {q.additional, r.additional},
	} {
		if err := containsAll(want[1], want[0]); err != nil {
			return fmt.Errorf("%s section: %w", what, err)
		}
	}
	return nil
}

// containsAll reports whether every prefix in want matches its own record
// of got, case-insensitively.
func containsAll(got, want []string) error {
	left := slices.Clone(got)
	for _, w := range want {
		i := slices.IndexFunc(left, func(g string) bool {
			return len(g) >= len(w) && strings.EqualFold(g[:len(w)], w)
		})
		if i < 0 {
			return fmt.Errorf("%q has no record matching %q", got, w)
		}
		left = slices.Delete(left, i, i+1)
	}
	return nil
}

// ask puts q to every node over UDP and TCP and returns an error unless
// each answer is what q wants and all are the same: exactly the same from
// every node over one transport, the same but for the case of names
// between UDP and TCP. (Over UDP the fast path writes names that end the
// question's as pointers to it, so they take the question's case; over
// TCP the records keep the zone's case. Both are right: names compare
// case-insensitively.)
func (d *dnsTest) ask(t *testing.T, q query) error {
	t.Helper()
	var first, firstFrom string
	for _, transport := range []string{"+notcp", "+tcp"} {
		var same, sameFrom string
		for _, n := range d.nodes {
			r, err := dig(t, n.dnsAddr, q.name, q.qtype, transport)
			if err != nil {
				return err
			}
			from := fmt.Sprintf("%s %s", n.name, transport)
			if err := q.check(r); err != nil {
				return fmt.Errorf("%s %s from %s: %w\n%s", q.name, q.qtype, from, err, r.out)
			}
			k := r.key()
			if same == "" {
				same, sameFrom = k, from
			} else if k != same {
				return fmt.Errorf("%s %s: %s answers\n  %s\n%s answers\n  %s", q.name, q.qtype, sameFrom, same, from, k)
			}
			if first == "" {
				first, firstFrom = k, from
			} else if !strings.EqualFold(k, first) {
				return fmt.Errorf("%s %s: %s answers\n  %s\n%s answers\n  %s", q.name, q.qtype, firstFrom, first, from, k)
			}
		}
	}
	return nil
}

const soaPrefix = "example.test. 60 IN SOA ns1.example.test. hostmaster.example.test. "

// sameAnswers: the zone loaded on n3 is answered identically by all three
// nodes, and so are the cluster's own names.
func (d *dnsTest) sameAnswers(t *testing.T) {
	www := []string{"www.example.test. 300 IN A 192.0.2.80", "www.example.test. 300 IN A 192.0.2.81"}
	soa := soaPrefix + "2024010101 3600 600 86400 60"
	queries := []query{
		{name: "www.example.test", qtype: "A", status: "NOERROR", answer: www},
		{name: "WwW.ExAmPlE.tEsT", qtype: "A", status: "NOERROR", answer: www},
		{name: "nope.example.test", qtype: "A", status: "NXDOMAIN", authority: []string{soa}},
		{name: "www.example.test", qtype: "TXT", status: "NOERROR", authority: []string{soa}}, // NODATA
		{name: "alias.example.test", qtype: "A", status: "NOERROR",
			answer: append([]string{"alias.example.test. 300 IN CNAME www.example.test."}, www...)},
		{name: "example.test", qtype: "MX", status: "NOERROR",
			answer:     []string{"example.test. 300 IN MX 10 mail.example.test."},
			additional: []string{"mail.example.test. 300 IN A 192.0.2.25", "mail.example.test. 300 IN AAAA 2001:db8::25"}},
		{name: "host.wild.example.test", qtype: "A", status: "NOERROR",
			answer: []string{"host.wild.example.test. 300 IN A 192.0.2.99"}},
		{name: "a.b.wild.example.test", qtype: "TXT", status: "NOERROR",
			answer: []string{`a.b.wild.example.test. 300 IN TXT "wildcard"`}},
		{name: "host.wild.example.test", qtype: "AAAA", status: "NOERROR", authority: []string{soa}},
		{name: "example.test", qtype: "SOA", status: "NOERROR",
			answer: []string{"example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2024010101 3600 600 86400 60"}},
		{name: "leader.buoy.internal", qtype: "A", status: "NOERROR",
			answer: []string{"leader.buoy.internal. 5 IN A 127.0.0.1"}},
		{name: "nobody.nodes.buoy.internal", qtype: "A", status: "NXDOMAIN",
			authority: []string{"buoy.internal. "}},
		{name: "example.com", qtype: "A", status: "REFUSED"},
	}
	for _, n := range d.nodes {
		queries = append(queries, query{name: n.name + ".nodes.buoy.internal", qtype: "A", status: "NOERROR",
			answer: []string{n.name + ".nodes.buoy.internal. 5 IN A 127.0.0.1"}})
	}
	for _, q := range queries {
		// Once for the zone to arrive everywhere, and for the nodes to
		// learn their addresses from their peers.
		eventually(t, fmt.Sprintf("%s %s on every node", q.name, q.qtype), func() error { return d.ask(t, q) })
	}
}

// sameSerial returns the zone's serial if every node serves the same one.
func (d *dnsTest) sameSerial(t *testing.T) (uint32, error) {
	t.Helper()
	var serial uint32
	for i, n := range d.nodes {
		s, err := soaSerial(t, n.dnsAddr, "example.test")
		if err != nil {
			return 0, err
		}
		if i > 0 && s != serial {
			return 0, fmt.Errorf("%s serves serial %d, %s %d", d.nodes[0].name, serial, n.name, s)
		}
		serial = s
	}
	return serial, nil
}

// waitSerial waits until every node serves the same serial, after
// before unless before is 0, and returns it.
func (d *dnsTest) waitSerial(t *testing.T, before uint32) uint32 {
	t.Helper()
	var serial uint32
	eventually(t, fmt.Sprintf("the same SOA serial after %d on every node", before), func() error {
		s, err := d.sameSerial(t)
		if err != nil {
			return err
		}
		if before != 0 && !serialAfter(s, before) {
			return fmt.Errorf("every node serves serial %d, want after %d", s, before)
		}
		serial = s
		return nil
	})
	return serial
}

// waitGone waits until name is NXDOMAIN on every node with a serial after
// before, and returns the new serial.
func (d *dnsTest) waitGone(t *testing.T, name string, before uint32) uint32 {
	t.Helper()
	serial := d.waitSerial(t, before)
	eventually(t, name+" gone everywhere", func() error {
		return d.ask(t, query{name: name, qtype: "A", status: "NXDOMAIN", authority: []string{soaPrefix}})
	})
	return serial
}

// sighupDelete: a record deleted from the file disappears from every node
// after SIGHUP to the node that has the file, with a higher serial.
func (d *dnsTest) sighupDelete(t *testing.T) {
	before := d.waitSerial(t, 0)
	d.serialBeforeEdits = before
	if err := d.ask(t, query{name: "gone.example.test", qtype: "A", status: "NOERROR",
		answer: []string{"gone.example.test. 300 IN A 192.0.2.66"}}); err != nil {
		t.Fatal(err)
	}
	d.zone.remove(t, "gone ")
	d.zone.write(t)
	if err := d.holder.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP %s: %v", d.holder.name, err)
	}
	after := d.waitGone(t, "gone.example.test", before)
	t.Logf("serial %d -> %d after SIGHUP", before, after)
}

// apiReload: "buoy zone reload" does the same through the API, and "buoy
// zone show" on another node shows the result.
func (d *dnsTest) apiReload(t *testing.T) {
	before := d.waitSerial(t, 0)
	d.zone.remove(t, "gone2 ")
	d.zone.write(t)
	if _, _, err := d.holder.zone("reload"); err != nil {
		t.Fatal(err)
	}
	after := d.waitGone(t, "gone2.example.test", before)
	t.Logf("serial %d -> %d after buoy zone reload", before, after)
	out, _, err := d.nodes[0].zone("show", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "gone2.example.test.") || !strings.Contains(out, "www.example.test.") {
		t.Errorf("buoy zone show example.test on %s = %q, want www and no gone2", d.nodes[0].name, out)
	}
}

// brokenFile: a file with a syntax error is refused with file:line: reason
// (in the agent's log on SIGHUP, in the output of "buoy zone reload" and
// "buoy zone load"), and the zone keeps serving its last good version.
func (d *dnsTest) brokenFile(t *testing.T) {
	before := d.waitSerial(t, 0)
	line := d.zone.writeWith(t, "broken IN A 192.0.2.300")
	where := fmt.Sprintf("%s:%d: ", d.zone.path, line)
	logFrom := len(d.holder.output())

	if err := d.holder.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP %s: %v", d.holder.name, err)
	}
	eventually(t, fmt.Sprintf("%q in the log of %s", where, d.holder.name), func() error {
		if out := d.holder.output(); !strings.Contains(out[min(logFrom, len(out)):], where) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	_, stderr, err := d.holder.zone("reload")
	if err == nil || !strings.Contains(stderr, where) {
		t.Errorf("buoy zone reload with a broken file: err %v, stderr %q; want an error naming %q", err, stderr, where)
	}
	_, stderr, err = d.nodes[0].zone("load", d.zone.path)
	if err == nil || !strings.Contains(stderr, where) {
		t.Errorf("buoy zone load of a broken file: err %v, stderr %q; want an error naming %q", err, stderr, where)
	}
	t.Logf("refused: %s", strings.TrimSpace(stderr))

	if after := d.waitSerial(t, 0); after != before {
		t.Errorf("serial after the broken reload = %d, want %d (unchanged)", after, before)
	}
	if err := d.ask(t, query{name: "www.example.test", qtype: "A", status: "NOERROR",
		answer: []string{"www.example.test. 300 IN A 192.0.2.80", "www.example.test. 300 IN A 192.0.2.81"}}); err != nil {
		t.Error(err)
	}
	d.zone.write(t) // repaired, for the subtests that follow
}

// follower returns a node that does not lead the cluster.
func (d *dnsTest) follower(t *testing.T) *dnsAgent {
	t.Helper()
	st, err := d.nodes[0].status()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range d.nodes {
		if n.name != st.Leader {
			return n
		}
	}
	t.Fatalf("no follower: leader %q", st.Leader)
	return nil
}

// nsupdate sends one update through nsupdate to addr, signed with keyArg
// when it is not empty.
func nsupdate(t *testing.T, addr, keyArg string, commands ...string) (string, error) {
	t.Helper()
	host, port := hostPort(t, addr)
	script := fmt.Sprintf("server %s %s\nzone example.test\n%s\nsend\n", host, port, strings.Join(commands, "\n"))
	args := []string{"-t", "20"}
	if keyArg != "" {
		args = append(args, "-y", keyArg)
	}
	return runTool(tool(t, "nsupdate"), script, args...)
}

// update: RFC 2136 updates signed with TSIG, sent to a follower, add and
// delete records that every node then answers; a failed prerequisite, an
// unsigned update and one signed with a wrong key change nothing.
func (d *dnsTest) update(t *testing.T) {
	tool(t, "nsupdate")
	f := d.follower(t)
	t.Logf("updates go to %s, a follower", f.name)
	before := d.waitSerial(t, 0)

	if out, err := nsupdate(t, f.dnsAddr, d.key.arg(),
		"update add dyn.example.test 300 A 192.0.2.123",
		`update add dyn.example.test 300 TXT "added by nsupdate"`); err != nil {
		t.Fatalf("signed update: %v\n%s", err, out)
	}
	eventually(t, "dyn.example.test A everywhere", func() error {
		return d.ask(t, query{name: "dyn.example.test", qtype: "A", status: "NOERROR",
			answer: []string{"dyn.example.test. 300 IN A 192.0.2.123"}})
	})
	if s := d.waitSerial(t, 0); !serialAfter(s, before) {
		t.Errorf("serial after the update = %d, want after %d", s, before)
	}

	wrong := make([]byte, 32)
	_, _ = rand.Read(wrong)
	refusals := []struct {
		what, key, want string
		commands        []string
	}{
		{"unsigned", "", "REFUSED", []string{"update add refused.example.test 300 A 192.0.2.1"}},
		{"wrong secret", "hmac-sha256:" + d.key.name + ":" + base64.StdEncoding.EncodeToString(wrong), "NOTAUTH",
			[]string{"update add refused.example.test 300 A 192.0.2.1"}},
		{"unknown key", "hmac-sha256:other-key:" + d.key.secret, "NOTAUTH",
			[]string{"update add refused.example.test 300 A 192.0.2.1"}},
		{"failed prerequisite", d.key.arg(), "YXDOMAIN",
			[]string{"prereq nxdomain www.example.test", "update add refused.example.test 300 A 192.0.2.1"}},
	}
	for _, r := range refusals {
		out, err := nsupdate(t, f.dnsAddr, r.key, r.commands...)
		if err == nil || !strings.Contains(out, "update failed: "+r.want) {
			t.Errorf("%s update: err %v, output %q; want it to fail with %s", r.what, err, out, r.want)
		}
	}

	if out, err := nsupdate(t, f.dnsAddr, d.key.arg(), "update delete dyn.example.test A"); err != nil {
		t.Fatalf("signed delete: %v\n%s", err, out)
	}
	eventually(t, "dyn.example.test A deleted everywhere, its TXT kept", func() error {
		if err := d.ask(t, query{name: "dyn.example.test", qtype: "A", status: "NOERROR",
			authority: []string{soaPrefix}}); err != nil {
			return err
		}
		return d.ask(t, query{name: "dyn.example.test", qtype: "TXT", status: "NOERROR",
			answer: []string{`dyn.example.test. 300 IN TXT "added by nsupdate"`}})
	})
	// Every refused update must have left no trace, now that a later one
	// has committed everywhere.
	if err := d.ask(t, query{name: "refused.example.test", qtype: "A", status: "NXDOMAIN",
		authority: []string{soaPrefix}}); err != nil {
		t.Error(err)
	}
}

// kdig runs kdig against addr with args.
func kdig(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	host, port := hostPort(t, addr)
	return runTool(tool(t, "kdig"), "", slices.Concat([]string{"@" + host, "-p", port, "+time=5", "+retry=2"}, args)...)
}

// transfers: AXFR with TSIG from one node gives the whole zone as "buoy
// zone show" lists it; IXFR with TSIG from a serial before the edits gives
// the changes since; transfers without the key, or with a wrong one, are
// refused.
func (d *dnsTest) transfers(t *testing.T) {
	tool(t, "kdig")
	n := d.nodes[1]
	serial := d.waitSerial(t, 0)

	out, err := kdig(t, n.dnsAddr, "-y", d.key.arg(), "example.test", "AXFR")
	if err != nil {
		t.Fatalf("AXFR: %v", err)
	}
	axfr := records(out)
	shown, _, err := n.zone("show", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	want := records(shown)
	const soa = "example.test. 300 IN SOA "
	switch {
	case len(axfr) < 2 || !strings.HasPrefix(axfr[0], soa) || axfr[0] != axfr[len(axfr)-1]:
		t.Errorf("AXFR from %s does not start and end with the same SOA:\n%s", n.name, out)
	case !strings.Contains(axfr[0], fmt.Sprintf(" %d ", serial)):
		t.Errorf("AXFR from %s starts with %q, want serial %d", n.name, axfr[0], serial)
	default:
		got := sorted(axfr[1:])
		if w := sorted(want); !slices.Equal(got, w) {
			t.Errorf("AXFR from %s gives\n%s\nwant what buoy zone show gives:\n%s", n.name, strings.Join(got, "\n"), strings.Join(w, "\n"))
		}
	}
	if strings.Contains(out, "failed") || strings.Contains(out, "WARNING") {
		t.Errorf("kdig reports a problem with the AXFR (TSIG?):\n%s", out)
	}

	out, err = kdig(t, n.dnsAddr, "-y", d.key.arg(), "example.test", fmt.Sprintf("IXFR=%d", d.serialBeforeEdits))
	if err != nil {
		t.Fatalf("IXFR: %v", err)
	}
	ixfr := records(out)
	// An incremental answer: the new SOA, then the old SOA opening the
	// first diff's deletions, which include the first deleted record.
	if len(ixfr) < 4 || !strings.Contains(ixfr[0], fmt.Sprintf(" %d ", serial)) ||
		!strings.HasPrefix(ixfr[1], soa) || !strings.Contains(ixfr[1], fmt.Sprintf(" %d ", d.serialBeforeEdits)) ||
		!slices.Contains(ixfr, "gone.example.test. 300 IN A 192.0.2.66") {
		t.Errorf("IXFR=%d from %s (at serial %d) is not incremental from %d with gone.example.test deleted:\n%s",
			d.serialBeforeEdits, n.name, serial, d.serialBeforeEdits, out)
	}
	if strings.Contains(out, "failed") || strings.Contains(out, "WARNING") {
		t.Errorf("kdig reports a problem with the IXFR (TSIG?):\n%s", out)
	}

	wrong := make([]byte, 32)
	_, _ = rand.Read(wrong)
	for _, r := range []struct{ what, want string }{
		{"", "REFUSED"},
		{"hmac-sha256:" + d.key.name + ":" + base64.StdEncoding.EncodeToString(wrong), "BADSIG"}, // kdig names the TSIG error of the NOTAUTH
	} {
		args := []string{"example.test", "AXFR"}
		if r.what != "" {
			args = append([]string{"-y", r.what}, args...)
		}
		out, err := kdig(t, n.dnsAddr, args...)
		if err == nil || !strings.Contains(out, r.want) || len(records(out)) > 0 {
			t.Errorf("kdig %s: err %v, output %q; want it refused with %s", strings.Join(args, " "), err, out, r.want)
		}
	}
}

// secondary: knotd pulls the zone from a follower with TSIG, gets a NOTIFY
// from the leader when the file changes (reloaded with SIGHUP), transfers
// the change and serves the new serial.
func (d *dnsTest) secondary(t *testing.T) {
	primary := d.follower(t)
	k := startKnot(t, d.knotAddr, primary.dnsAddr, "example.test.", d.key.name, d.key.secret)
	serial := d.waitSerial(t, 0)
	eventually(t, fmt.Sprintf("knotd serving serial %d", serial), func() error {
		if !k.running() {
			return fmt.Errorf("knotd exited:\n%s", k.log())
		}
		s, err := soaSerial(t, k.addr, "example.test")
		if err != nil {
			return err
		}
		if s != serial {
			return fmt.Errorf("knotd serves serial %d, want %d", s, serial)
		}
		return nil
	})

	// The SOA's refresh is an hour: only a NOTIFY makes knotd ask again
	// within the test.
	d.zone.records = append(d.zone.records, "knot IN A 192.0.2.201")
	d.zone.write(t)
	if err := d.holder.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP %s: %v", d.holder.name, err)
	}
	next := d.waitSerial(t, serial)
	eventually(t, fmt.Sprintf("knotd serving serial %d and knot.example.test", next), func() error {
		s, err := soaSerial(t, k.addr, "example.test")
		if err != nil {
			return err
		}
		if s != next {
			return fmt.Errorf("knotd serves serial %d, want %d", s, next)
		}
		r, err := dig(t, k.addr, "knot.example.test", "A")
		if err != nil {
			return err
		}
		if r.status != "NOERROR" || !slices.Contains(r.answer, "knot.example.test. 300 IN A 192.0.2.201") {
			return fmt.Errorf("knotd answers knot.example.test A with %s %q", r.status, r.answer)
		}
		return nil
	})
	if log := strings.ToLower(k.log()); !strings.Contains(log, "notify, incoming") {
		t.Errorf("knotd's log shows no incoming NOTIFY:\n%s", k.log())
	} else if strings.Contains(log, "ixfr, incoming") {
		t.Log("knotd took the change by IXFR")
	}
}

// truncation: a 60-record TXT RRset does not fit a UDP answer: over UDP the
// answer has TC set (dig +ignore shows it), and dig, retrying over TCP,
// gets all 60 records.
func (d *dnsTest) truncation(t *testing.T) {
	for _, n := range d.nodes {
		r, err := dig(t, n.dnsAddr, "big.example.test", "TXT", "+ignore")
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "NOERROR" || !slices.Contains(r.flags, "tc") || len(r.answer) >= 60 {
			t.Errorf("big.example.test TXT over UDP from %s: %s, flags %v, %d records; want NOERROR, tc, fewer than 60\n%s",
				n.name, r.status, r.flags, len(r.answer), r.out)
		}
		r, err = dig(t, n.dnsAddr, "big.example.test", "TXT")
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "NOERROR" || slices.Contains(r.flags, "tc") || len(r.answer) != 60 ||
			!strings.Contains(r.out, "Truncated, retrying in TCP mode") {
			t.Errorf("big.example.test TXT from %s with TCP retry: %s, flags %v, %d records; want NOERROR, no tc, 60 records after a retry\n%s",
				n.name, r.status, r.flags, len(r.answer), r.out)
		}
	}
}
