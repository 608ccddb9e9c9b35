package netlab_test

import (
	"bufio"
	"context"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"buoy/e2e/netlab"
)

// testTimeout bounds each test's programs. Generous: the machine may be
// loaded, and no test asserts how fast anything is.
const testTimeout = 30 * time.Second

// self returns the path of the test binary, which doubles as the helper.
func self(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatalf("os.Executable() = %v", err)
	}
	return p
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// serve starts the helper's TCP server in h on the given ports and waits
// until it listens.
func serve(t *testing.T, ctx context.Context, lab *netlab.Lab, h *netlab.Host, ports ...string) *netlab.Proc {
	t.Helper()
	args := []string{helperArg, "serve"}
	for _, p := range ports {
		args = append(args, "0.0.0.0:"+p)
	}
	p, err := lab.Start(h.Command(ctx, self(t), args...))
	if err != nil {
		t.Fatalf("start server in %s: %v", h.Name(), err)
	}
	for _, port := range ports {
		if err := p.WaitOutput(ctx, "listening 0.0.0.0:"+port+"\n"); err != nil {
			t.Fatalf("server in %s: %v; output:\n%s", h.Name(), err, p.Output())
		}
	}
	return p
}

// dial connects from h to addr with the helper and returns the address the
// server saw, or the helper's error.
func dial(t *testing.T, ctx context.Context, h *netlab.Host, addr string, extra ...string) (netip.AddrPort, error) {
	t.Helper()
	args := append([]string{helperArg, "dial", "-timeout", "2s"}, extra...)
	out, err := h.Run(ctx, self(t), append(args, addr)...)
	if err != nil {
		return netip.AddrPort{}, err
	}
	s, err := seenLine(string(out))
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("helper answered %q: %v", s, err)
	}
	return ap, nil
}

// mustDial is dial that fails the test on error.
func mustDial(t *testing.T, ctx context.Context, h *netlab.Host, addr string, extra ...string) netip.AddrPort {
	t.Helper()
	ap, err := dial(t, ctx, h, addr, extra...)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, h.Name(), err)
	}
	return ap
}

// held is a helper connection kept open: ping sends a line and returns
// the server's answer.
type held struct {
	in   io.WriteCloser
	out  *bufio.Reader
	cmd  *exec.Cmd
	name string
}

func hold(t *testing.T, ctx context.Context, h *netlab.Host, addr string) (*held, netip.AddrPort) {
	t.Helper()
	cmd := h.Command(ctx, self(t), helperArg, "dial", "-hold", "-timeout", "10s", addr)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("stdin pipe: %v", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start held dial from %s: %v", h.Name(), err)
	}
	c := &held{in: in, out: bufio.NewReader(out), cmd: cmd, name: h.Name()}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("held dial from %s to %s: %v", h.Name(), addr, err)
	}
	s, err := seenLine(line)
	if err != nil {
		t.Fatalf("held dial from %s to %s: %v", h.Name(), addr, err)
	}
	return c, netip.MustParseAddrPort(s)
}

// ping sends one line on the held connection and returns the answer line
// (which starts with "error:" if the connection broke).
func (c *held) ping(t *testing.T) string {
	t.Helper()
	if _, err := io.WriteString(c.in, "ping\n"); err != nil {
		t.Fatalf("held connection from %s: write: %v", c.name, err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("held connection from %s: read: %v", c.name, err)
	}
	return strings.TrimSpace(line)
}

func TestTwoHostsOneSwitch(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t)
	ctx := testContext(t)
	sw := lab.Switch("lan")
	a, b := lab.Host("a"), lab.Host("b")
	a.Attach(sw, "198.51.100.11/24")
	b.Attach(sw, "198.51.100.12/24")
	serve(t, ctx, lab, a, "7000")
	serve(t, ctx, lab, b, "7000")

	tests := []struct {
		from *netlab.Host
		to   string
		want netip.Addr
	}{
		{a, "198.51.100.12:7000", netip.MustParseAddr("198.51.100.11")},
		{b, "198.51.100.11:7000", netip.MustParseAddr("198.51.100.12")},
	}
	for _, tt := range tests {
		t.Run(tt.from.Name(), func(t *testing.T) {
			got := mustDial(t, ctx, tt.from, tt.to)
			if got.Addr() != tt.want {
				t.Errorf("dial %s from %s: server saw %v, want %v", tt.to, tt.from.Name(), got.Addr(), tt.want)
			}
		})
	}
	if got, want := a.IP(sw), netip.MustParseAddr("198.51.100.11"); got != want {
		t.Errorf("a.IP(lan) = %v, want %v", got, want)
	}
	if got, want := a.Ifname(sw), "eth0"; got != want {
		t.Errorf("a.Ifname(lan) = %q, want %q", got, want)
	}
}

// natLab is a home network: pi1 and pi2 on a LAN behind router nat1, and a
// public host pub on the WAN switch.
type natLab struct {
	lab      *netlab.Lab
	wan, lan *netlab.Switch
	pub      *netlab.Host
	r        *netlab.Router
	pi1, pi2 *netlab.Host
}

func newNATLab(t *testing.T) *natLab {
	t.Helper()
	n := &natLab{lab: netlab.New(t)}
	n.wan, n.lan = n.lab.Switch("wan"), n.lab.Switch("lan")
	n.pub = n.lab.Host("pub")
	n.pub.Attach(n.wan, "203.0.113.50/24")
	n.r = n.lab.Router("nat1", n.wan, "203.0.113.2/24", n.lan, "192.0.2.1/24")
	n.pi1, n.pi2 = n.lab.Host("pi1"), n.lab.Host("pi2")
	n.pi1.Attach(n.lan, "192.0.2.11/24")
	n.pi2.Attach(n.lan, "192.0.2.12/24")
	n.pi1.Route("default", "192.0.2.1")
	n.pi2.Route("default", "192.0.2.1")
	return n
}

func TestNATWANChange(t *testing.T) {
	t.Parallel()
	n := newNATLab(t)
	ctx := testContext(t)
	serve(t, ctx, n.lab, n.pub, "7000")

	c, seen := hold(t, ctx, n.pi1, "203.0.113.50:7000")
	if want := netip.MustParseAddr("203.0.113.2"); seen.Addr() != want {
		t.Fatalf("pub saw pi1 as %v, want the router's WAN address %v", seen, want)
	}
	if got := c.ping(t); got != "seen "+seen.String() {
		t.Fatalf("ping before the change = %q, want %q", got, "seen "+seen.String())
	}
	if got := n.r.ConntrackEntries(); got < 1 {
		t.Fatalf("ConntrackEntries() with an open flow = %d, want >= 1", got)
	}

	n.r.SetWAN("203.0.113.9/24")
	if got, want := n.r.WAN(), netip.MustParsePrefix("203.0.113.9/24"); got != want {
		t.Errorf("WAN() = %v, want %v", got, want)
	}
	if got := n.r.ConntrackEntries(); got != 0 {
		t.Errorf("ConntrackEntries() after SetWAN = %d, want 0", got)
	}
	if got := c.ping(t); !strings.HasPrefix(got, "error:") {
		t.Errorf("ping on the old flow after SetWAN = %q, want an error", got)
	}
	for _, h := range []*netlab.Host{n.pi1, n.pi2} {
		if got, want := mustDial(t, ctx, h, "203.0.113.50:7000").Addr(), netip.MustParseAddr("203.0.113.9"); got != want {
			t.Errorf("after SetWAN, pub saw %s as %v, want %v", h.Name(), got, want)
		}
	}
}

func TestPortForward(t *testing.T) {
	t.Parallel()
	n := newNATLab(t)
	ctx := testContext(t)
	serve(t, ctx, n.lab, n.pi1, "7000")

	// Without a forward the router answers for its own WAN address.
	if ap, err := dial(t, ctx, n.pub, "203.0.113.2:8080"); err == nil {
		t.Fatalf("dial 203.0.113.2:8080 without a forward reached a server that saw %v", ap)
	}
	n.r.Forward("tcp", 8080, "192.0.2.11", 7000)
	for _, wan := range []string{"203.0.113.2", "203.0.113.9"} {
		if wan != n.r.WAN().Addr().String() {
			n.r.SetWAN(wan + "/24")
		}
		got := mustDial(t, ctx, n.pub, wan+":8080")
		if want := netip.MustParseAddr("203.0.113.50"); got.Addr() != want {
			t.Errorf("through the forward at %s, pi1 saw pub as %v, want %v", wan, got.Addr(), want)
		}
	}

	// An inbound flow through the forward is tracked until a flush.
	c, _ := hold(t, ctx, n.pub, n.r.WAN().Addr().String()+":8080")
	if got := c.ping(t); !strings.HasPrefix(got, "seen 203.0.113.50:") {
		t.Fatalf("ping through the forward = %q, want pub's address", got)
	}
	if got := n.r.ConntrackEntries(); got < 1 {
		t.Errorf("ConntrackEntries() with a forwarded flow open = %d, want >= 1", got)
	}
	n.r.FlushConntrack()
	if got := n.r.ConntrackEntries(); got != 0 {
		t.Errorf("ConntrackEntries() after FlushConntrack = %d, want 0", got)
	}

	// Even with a route to the LAN, the WAN side cannot open a flow to a
	// LAN host directly: the forward chain drops it.
	n.pub.Route("192.0.2.0/24", "203.0.113.9")
	if ap, err := dial(t, ctx, n.pub, "192.0.2.11:7000", "-timeout", "1s"); err == nil {
		t.Errorf("unsolicited dial from the WAN to 192.0.2.11:7000 reached a server that saw %v", ap)
	}
}

func TestNATModes(t *testing.T) {
	t.Parallel()
	n := newNATLab(t)
	ctx := testContext(t)
	serve(t, ctx, n.lab, n.pub, "7000", "7001", "7002")

	tests := []struct {
		mode netlab.NATMode
		port string // inside source port, fixed so that the mapping shows
		// wantSame: every destination sees the inside port unchanged;
		// otherwise the destinations must see at least two different ports.
		wantSame bool
	}{
		{netlab.Cone, "40000", true},
		{netlab.Symmetric, "40100", false},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			n.r.SetNAT(tt.mode)
			seen := map[uint16]bool{}
			for _, dst := range []string{"7000", "7001", "7002"} {
				got := mustDial(t, ctx, n.pi1, "203.0.113.50:"+dst, "-from", "192.0.2.11:"+tt.port)
				if got.Addr() != n.r.WAN().Addr() {
					t.Errorf("%v NAT: pub:%s saw %v, want the WAN address %v", tt.mode, dst, got, n.r.WAN().Addr())
				}
				seen[got.Port()] = true
			}
			switch {
			case tt.wantSame && (len(seen) != 1 || !seen[mustPort(t, tt.port)]):
				t.Errorf("%v NAT: destinations saw ports %v, want only %s", tt.mode, seen, tt.port)
			case !tt.wantSame && len(seen) < 2:
				t.Errorf("%v NAT: destinations saw ports %v, want different ports", tt.mode, seen)
			}
		})
	}
}

func mustPort(t *testing.T, s string) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort("0.0.0.0:" + s)
	if err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return ap.Port()
}

func TestSetAddr(t *testing.T) {
	t.Parallel()
	n := newNATLab(t)
	ctx := testContext(t)
	serve(t, ctx, n.lab, n.pi2, "7000")
	serve(t, ctx, n.lab, n.pub, "7000")

	if got, want := mustDial(t, ctx, n.pi1, "192.0.2.12:7000").Addr(), netip.MustParseAddr("192.0.2.11"); got != want {
		t.Fatalf("before SetAddr, pi2 saw pi1 as %v, want %v", got, want)
	}
	n.pi1.SetAddr(n.lan, "192.0.2.21/24")
	if got, want := n.pi1.IP(n.lan), netip.MustParseAddr("192.0.2.21"); got != want {
		t.Errorf("pi1.IP(lan) = %v, want %v", got, want)
	}
	if got, want := mustDial(t, ctx, n.pi1, "192.0.2.12:7000").Addr(), netip.MustParseAddr("192.0.2.21"); got != want {
		t.Errorf("after SetAddr, pi2 saw pi1 as %v, want %v", got, want)
	}
	// The default route came back with the new lease.
	if got, want := mustDial(t, ctx, n.pi1, "203.0.113.50:7000").Addr(), netip.MustParseAddr("203.0.113.2"); got != want {
		t.Errorf("after SetAddr, pub saw pi1 as %v, want %v", got, want)
	}
}

func TestCutRestore(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t)
	ctx := testContext(t)
	sw := lab.Switch("lan")
	a, b := lab.Host("a"), lab.Host("b")
	a.Attach(sw, "198.51.100.11/24")
	b.Attach(sw, "198.51.100.12/24")
	serve(t, ctx, lab, b, "7000")
	c, seen := hold(t, ctx, a, "198.51.100.12:7000")

	lab.Cut(a, sw)
	lab.Cut(a, sw) // a second cut changes nothing
	if ap, err := dial(t, ctx, a, "198.51.100.12:7000", "-timeout", "1s"); err == nil {
		t.Fatalf("dial across a cut link reached a server that saw %v", ap)
	}
	// A line sent during the cut is retransmitted and answered after it.
	if _, err := io.WriteString(c.in, "ping\n"); err != nil {
		t.Fatalf("write on the held connection: %v", err)
	}
	lab.Restore(a, sw)
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("held connection after Restore: %v", err)
	}
	if got, want := strings.TrimSpace(line), "seen "+seen.String(); got != want {
		t.Errorf("held connection across the cut answered %q, want %q", got, want)
	}
	if got, want := mustDial(t, ctx, a, "198.51.100.12:7000").Addr(), a.IP(sw); got != want {
		t.Errorf("after Restore, b saw a as %v, want %v", got, want)
	}
}
