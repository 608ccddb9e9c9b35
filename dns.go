package buoy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"buoy/internal/api"
	"buoy/internal/dnsserver"
	"buoy/internal/store"
	"buoy/internal/zonefile"
)

// DNS defaults.
const (
	DefaultDNSAddr = ":53"
	DefaultZone    = "buoy.internal."
	// nodeTTL is the TTL of the names that follow addresses
	// (<node>.nodes.<zone>, leader.<zone>): short, they move.
	nodeTTL = 5
)

// dnsNode is the node's authoritative DNS service: the server, its
// sockets, and the loop that feeds it the replicated zones and the live
// node addresses.
type dnsNode struct {
	n      *Node
	srv    *dnsserver.Server
	origin string // the cluster zone

	// mu guards the following fields.
	mu      sync.Mutex
	overlay []string // the last overlay set, as text, to skip no-op rebuilds
	kick    chan struct{}
}

func (n *Node) startDNS() error {
	if (n.cfg.DNSAddr == "" || n.cfg.DNSAddr == "-") && n.cfg.DNSConn == nil {
		return nil
	}
	tsig := map[string]string{}
	algs := map[string]string{}
	for _, k := range n.cfg.TSIGKeys {
		name, alg, secret, err := dnsserver.ParseTSIGKey(k)
		if err != nil {
			return fmt.Errorf("%w: --tsig-key: %w", ErrConfig, err)
		}
		tsig[name], algs[name] = secret, alg
	}
	var acl []netip.Prefix
	for _, a := range n.cfg.TransferACL {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ip, err2 := netip.ParseAddr(a)
			if err2 != nil {
				return fmt.Errorf("%w: --allow-transfer %q: want an address or a prefix", ErrConfig, a)
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		acl = append(acl, p)
	}
	d := &dnsNode{n: n, origin: dns.CanonicalName(n.cfg.Zone), kick: make(chan struct{}, 1)}
	d.srv = dnsserver.New(dnsserver.Config{
		Source:      d,
		TSIG:        tsig,
		TSIGAlgs:    algs,
		TransferACL: acl,
		Notify:      n.cfg.Notify,
		Logger:      n.log.With("component", "dns"),
	})
	var udp []net.PacketConn
	var tcp net.Listener
	if n.cfg.DNSConn != nil {
		udp, tcp = []net.PacketConn{n.cfg.DNSConn}, n.cfg.DNSListener
	} else {
		var err error
		if udp, tcp, err = listenDNS(n.cfg.DNSAddr, min(runtime.GOMAXPROCS(0), 4)); err != nil {
			return err
		}
	}
	n.dns = d
	n.dnsUDP, n.dnsTCP = udp, tcp
	for _, c := range udp {
		n.wg.Go(func() {
			if err := d.srv.ServeUDP(n.ctx, c); err != nil && n.ctx.Err() == nil {
				n.log.Error("DNS over UDP stopped", "err", err)
			}
		})
	}
	if tcp != nil {
		n.wg.Go(func() {
			if err := d.srv.ServeTCP(n.ctx, tcp); err != nil && n.ctx.Err() == nil {
				n.log.Error("DNS over TCP stopped", "err", err)
			}
		})
	}
	n.disco.onChange(func(string, netip.AddrPort, netip.AddrPort) { d.poke() })
	n.wg.Go(d.run)
	return nil
}

// listenDNS opens the UDP sockets and the TCP listener on addr. With port
// 0, TCP must share the port the kernel gave UDP; another program may
// hold that port for TCP already, so it tries a few ports.
func listenDNS(addr string, sockets int) ([]net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		udp, err := dnsserver.ListenUDP(addr, sockets)
		if err != nil {
			return nil, nil, fmt.Errorf("listen for DNS on %s/udp: %w", addr, err)
		}
		taddr := addr
		if port == "0" {
			taddr = udp[0].LocalAddr().String()
		}
		tcp, err := net.Listen("tcp", taddr)
		if err == nil {
			return udp, tcp, nil
		}
		for _, c := range udp {
			c.Close()
		}
		if port != "0" || attempt == 9 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("listen for DNS on %s/tcp: %w", taddr, err)
		}
	}
}

// poke asks the loop to rebuild the overlay.
func (d *dnsNode) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// run follows the replicated state and the live addresses: changed zones
// are recompiled (only those), dropped ones removed, the overlay refreshed,
// and secondaries notified. Every node notifies once it serves the change,
// not the leader alone: a secondary may pull from a follower, and a NOTIFY
// from the leader can reach it before that follower has applied the
// change; the secondary then finds the follower's serial up to date and
// does not ask again until its refresh timer (hours).
func (d *dnsNode) run() {
	var prev *store.State
	shape := ""
	t := time.NewTicker(time.Second) // leader changes have no event of their own
	defer t.Stop()
	for {
		s := d.n.fsm.View()
		changed, dropped := s.ZonesChanged(prev)
		if key := d.shapeKey(s); key != shape {
			shape = key
			changed = append(changed, d.origin) // members, voters (NS) or leader moved
		}
		for _, o := range dropped {
			if o != d.origin {
				d.srv.DropZone(o)
			}
		}
		for _, o := range dedupe(changed) {
			if err := d.setZone(s, o); err != nil {
				d.n.log.Error("serving zone", "zone", o, "err", err)
			}
			if z := s.Zone(o); z != nil && prev != nil && len(d.n.cfg.Notify) > 0 {
				serial := z.Serial
				d.n.wg.Go(func() {
					ctx, cancel := context.WithTimeout(d.n.ctx, time.Minute)
					defer cancel()
					if err := d.srv.NotifyAll(ctx, o, serial); err != nil && ctx.Err() == nil {
						d.n.log.Warn("NOTIFY", "zone", o, "serial", serial, "err", err)
					}
				})
			}
		}
		prev = s
		select {
		case <-s.Next():
		case <-d.kick:
			d.refreshOverlay(s)
		case <-t.C:
			if d.shapeKey(s) != shape {
				continue
			}
			d.refreshOverlay(s)
		case <-d.n.ctx.Done():
			return
		}
	}
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// shapeKey names what the cluster zone's SOA/NS and overlay depend on
// besides addresses: the members, the voters and the leader.
func (d *dnsNode) shapeKey(s *store.State) string {
	var b strings.Builder
	for _, m := range s.Current() {
		b.WriteString(m.Name)
		b.WriteByte(',')
	}
	b.WriteByte('|')
	b.WriteString(strings.Join(d.voterNames(), ","))
	b.WriteByte('|')
	b.WriteString(d.n.raft.Leader())
	b.WriteByte('|')
	b.WriteString(roleShapeKey(s))
	return b.String()
}

// setZone compiles zone o from state s (with the overlay for the cluster
// zone). The cluster zone exists even when no zone file was loaded for it:
// then its SOA and NS are made up from the voters.
func (d *dnsNode) setZone(s *store.State, o string) error {
	z := d.zoneOf(s, o)
	if z == nil {
		d.srv.DropZone(o)
		return nil
	}
	var ov dnsserver.Overlay
	if o == d.origin {
		ov = d.overlayOf(s)
		d.mu.Lock()
		d.overlay = overlayStrings(ov)
		d.mu.Unlock()
	}
	return d.srv.SetZone(z, ov)
}

func (d *dnsNode) zoneOf(s *store.State, o string) *dnsserver.Zone {
	if zs := s.Zone(o); zs != nil {
		rrs := zs.RRs()
		out := make([]dns.RR, len(rrs))
		for i, rr := range rrs {
			out[i] = dns.Copy(rr)
		}
		return &dnsserver.Zone{Origin: o, Serial: zs.Serial, Records: out}
	}
	if o != d.origin {
		return nil
	}
	return d.clusterZone(s)
}

// clusterZone makes up the cluster zone's SOA and NS (the voters) when no
// zone was loaded for it. Its serial is the Raft index of the newest
// member change, the same on every node.
func (d *dnsNode) clusterZone(s *store.State) *dnsserver.Zone {
	var serial uint64 = 1
	voters := d.voterNames()
	var rrs []dns.RR
	primary := "ns." + d.origin
	if len(voters) > 0 {
		primary = voters[0] + ".nodes." + d.origin
	}
	for _, m := range s.All() {
		serial = max(serial, m.JoinIndex)
	}
	rrs = append(rrs, &dns.SOA{
		Hdr:     dns.RR_Header{Name: d.origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns:      primary,
		Mbox:    "hostmaster." + d.origin,
		Serial:  uint32(serial),
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: nodeTTL,
	})
	for _, v := range voters {
		rrs = append(rrs, &dns.NS{
			Hdr: dns.RR_Header{Name: d.origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60},
			Ns:  v + ".nodes." + d.origin,
		})
	}
	return &dnsserver.Zone{Origin: d.origin, Serial: uint32(serial), Records: rrs}
}

func (d *dnsNode) voterNames() []string {
	servers, err := d.n.raft.Servers()
	if err != nil {
		return nil
	}
	var out []string
	for _, sv := range servers {
		if sv.Suffrage == 0 { // raft.Voter
			out = append(out, string(sv.ID))
		}
	}
	slices.Sort(out)
	return out
}

// overlayOf builds the names that follow live addresses.
func (d *dnsNode) overlayOf(s *store.State) dnsserver.Overlay {
	var rrs []dns.RR
	add := func(name string, ip netip.Addr) {
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: nodeTTL}
		if ip.Is4() {
			hdr.Rrtype = dns.TypeA
			rrs = append(rrs, &dns.A{Hdr: hdr, A: ip.AsSlice()})
		} else if ip.IsValid() {
			hdr.Rrtype = dns.TypeAAAA
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()})
		}
	}
	leader := d.n.raft.Leader()
	for _, m := range s.Current() {
		ip := d.n.nodeIP(m.Name)
		add(m.Name+".nodes."+d.origin, ip)
		if m.Name == leader {
			add("leader."+d.origin, ip)
		}
	}
	rrs, empty := d.n.roleOverlay(s, d.origin, rrs)
	return dnsserver.Overlay{Records: rrs, TTL: nodeTTL, Empty: empty}
}

// refreshOverlay swaps in a new overlay if the addresses changed.
func (d *dnsNode) refreshOverlay(s *store.State) {
	ov := d.overlayOf(s)
	txt := overlayStrings(ov)
	d.mu.Lock()
	same := slices.Equal(txt, d.overlay)
	d.overlay = txt
	d.mu.Unlock()
	if same {
		return
	}
	if err := d.srv.SetOverlay(d.origin, ov); err != nil {
		// The cluster zone may not be compiled yet: compile it whole.
		if err := d.setZone(s, d.origin); err != nil {
			d.n.log.Warn("updating node names", "err", err)
		}
	}
}

// overlayStrings is an overlay as text, to tell whether it changed.
func overlayStrings(ov dnsserver.Overlay) []string {
	out := rrStrings(ov.Records)
	for _, e := range ov.Empty {
		out = append(out, "empty "+e)
	}
	return out
}

func rrStrings(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	slices.Sort(out)
	return out
}

// nodeIP is the address a node's DNS name answers: our own voted address,
// or the public address in a peer's own signed record, or the best
// address we know for it.
func (n *Node) nodeIP(name string) netip.Addr {
	if name == n.cfg.Name {
		return n.Self()
	}
	if rec, ok := n.disco.book.Record(name); ok && len(rec.Addrs) > 0 {
		return rec.Addrs[0].Addr()
	}
	if ap, ok := n.PeerAddr(name); ok {
		return ap.Addr()
	}
	return netip.Addr{}
}

// Zone implements dnsserver.Source.
func (d *dnsNode) Zone(origin string) *dnsserver.Zone {
	s := d.n.fsm.View()
	if s.Zone(origin) == nil {
		return nil // the made-up cluster zone is not transferred
	}
	return d.zoneOf(s, origin)
}

// Changes implements dnsserver.Source.
func (d *dnsNode) Changes(origin string, from uint32) ([]dnsserver.Diff, bool) {
	zs := d.n.fsm.View().Zone(origin)
	if zs == nil {
		return nil, false
	}
	diffs, ok := zs.Changes(from)
	if !ok {
		return nil, false
	}
	out := make([]dnsserver.Diff, len(diffs))
	for i, df := range diffs {
		out[i] = dnsserver.Diff{FromSOA: df.FromSOA, ToSOA: df.ToSOA, Deleted: df.Deleted, Added: df.Added}
	}
	return out, true
}

// Update implements dnsserver.Source: the update goes through Raft and is
// answered once committed.
func (d *dnsNode) Update(ctx context.Context, origin string, prereq, updates []dns.RR) (int, error) {
	cmd, err := store.NewZoneUpdate(origin, prereq, updates)
	if err != nil {
		return dns.RcodeFormatError, nil
	}
	err = d.n.raft.Apply(ctx, cmd)
	if err == nil {
		return dns.RcodeSuccess, nil
	}
	if rc := store.Rcode(err); rc != dns.RcodeServerFailure {
		return rc, nil
	}
	return dns.RcodeServerFailure, err
}

// LoadZoneFiles reads the configured zone files and replaces each zone
// through Raft. A broken file is refused with file:line and its zone keeps
// serving the last good version; the other files still load.
func (n *Node) LoadZoneFiles(ctx context.Context) error {
	var errs []error
	for _, f := range n.cfg.ZoneFiles {
		if _, err := n.LoadZoneFile(ctx, f, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LoadZoneFile parses one master file (origin "" takes the SOA's owner)
// and replaces its zone through Raft. It returns the zone's origin.
func (n *Node) LoadZoneFile(ctx context.Context, path, origin string) (string, error) {
	rrs, err := zonefile.Load(path, origin, 0)
	if err != nil {
		return "", err
	}
	return n.PutZone(ctx, rrs)
}

// PutZone replaces a zone (given as its records, SOA first) through Raft.
func (n *Node) PutZone(ctx context.Context, rrs []dns.RR) (string, error) {
	if len(rrs) == 0 {
		return "", fmt.Errorf("%w: empty zone", store.ErrInvalidInput)
	}
	var origin string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeSOA {
			origin = dns.CanonicalName(rr.Header().Name)
			break
		}
	}
	if origin == "" {
		return "", fmt.Errorf("%w: the zone has no SOA record", store.ErrInvalidInput)
	}
	cmd := store.NewZonePut(origin, rrs)
	if _, err := store.DecodeCommand(mustEncode(cmd)); err != nil {
		return "", fmt.Errorf("zone %s: %w", origin, err)
	}
	if err := n.raft.Apply(ctx, cmd); err != nil {
		return "", fmt.Errorf("zone %s: %w", origin, err)
	}
	return origin, nil
}

func mustEncode(c store.Command) []byte {
	b, err := c.Encode()
	if err != nil {
		return nil
	}
	return b
}

// DropZone removes a zone loaded from a file or the API.
func (n *Node) DropZone(ctx context.Context, origin string) error {
	origin = dns.CanonicalName(origin)
	if n.fsm.View().Zone(origin) == nil {
		return fmt.Errorf("%w: zone %s", store.ErrZoneUnknown, origin)
	}
	return n.raft.Apply(ctx, store.NewZoneDrop(origin))
}

// ZoneInfo describes one zone served.
type ZoneInfo = api.ZoneInfo

// Zones lists the zones in the replicated state.
func (n *Node) Zones() []ZoneInfo {
	var out []ZoneInfo
	for _, z := range n.fsm.View().ZoneList() {
		out = append(out, ZoneInfo{Origin: z.Origin, Serial: z.Serial, Records: z.Len()})
	}
	return out
}

// ZoneText returns a zone as master-file text.
func (n *Node) ZoneText(origin string) (string, error) {
	z := n.fsm.View().Zone(dns.CanonicalName(origin))
	if z == nil {
		return "", fmt.Errorf("%w: zone %s", store.ErrZoneUnknown, origin)
	}
	var b strings.Builder
	for _, r := range z.Records() {
		b.WriteString(r)
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// DNSAddr returns the UDP address DNS is served on, or nil.
func (n *Node) DNSAddr() net.Addr {
	if len(n.dnsUDP) == 0 {
		return nil
	}
	return n.dnsUDP[0].LocalAddr()
}
