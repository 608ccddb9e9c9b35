package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestListenUDP(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		conns, err := ListenUDP("127.0.0.1:0", n)
		if err != nil {
			t.Fatalf("ListenUDP(127.0.0.1:0, %d): %v", n, err)
		}
		want := max(n, 1)
		if !reusePortSupported {
			want = 1
		}
		if len(conns) != want {
			t.Errorf("ListenUDP(127.0.0.1:0, %d) = %d sockets, want %d", n, len(conns), want)
		}
		for _, c := range conns[1:] {
			if c.LocalAddr().String() != conns[0].LocalAddr().String() {
				t.Errorf("ListenUDP(127.0.0.1:0, %d): sockets on %s and %s, want one address", n, conns[0].LocalAddr(), c.LocalAddr())
			}
		}
		for _, c := range conns {
			c.Close()
		}
	}
	if _, err := ListenUDP("not an address", 2); err == nil {
		t.Errorf("ListenUDP(not an address) succeeded")
	}
}

// Queries sent to any of the SO_REUSEPORT sockets are answered.
func TestListenUDPServes(t *testing.T) {
	env := startServer(t, Config{}, TCPLimits{})
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	for i := range 20 { // from 20 source ports, spread over the sockets
		m := new(dns.Msg).SetQuestion("www.example.org.", dns.TypeA)
		r, _, err := c.Exchange(m, env.addr)
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("query %d: %v, %v", i, r, err)
		}
	}
}

// tcpQuery writes a length-prefixed query for name.
func tcpQuery(t *testing.T, c net.Conn, id uint16, name string) {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, dns.TypeA)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b)))); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// tcpRead reads one answer, or returns the read error.
func tcpRead(c net.Conn) (*dns.Msg, error) {
	// A guard against a hang, far above any timeout under test.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(b)
}

// closedByServer reports whether err means the server closed (or reset)
// the connection, rather than the test's read deadline passing.
func closedByServer(err error) bool {
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTCPPipelining(t *testing.T) {
	env := startServer(t, Config{}, TCPLimits{MaxQueries: 5})
	c := dialTCP(t, env.addr)
	names := []string{"www.example.org.", "ns1.example.org.", "nx.example.org.", "WWW.example.org.", "example.net."}
	for i, n := range names {
		tcpQuery(t, c, uint16(100+i), n)
	}
	for i, n := range names {
		r, err := tcpRead(c)
		if err != nil {
			t.Fatalf("answer %d (%s): %v", i, n, err)
		}
		if r.Id != uint16(100+i) || r.Question[0].Name != n {
			t.Errorf("answer %d = id %d for %s, want id %d for %s, in order", i, r.Id, r.Question[0].Name, 100+i, n)
		}
	}
	// The query limit is reached: the server closes the connection (so
	// the write may fail already).
	_, _ = c.Write([]byte{0, 12, 0, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	if r, err := tcpRead(c); !closedByServer(err) {
		t.Errorf("query beyond MaxQueries = %v, %v; want the connection closed", r, err)
	}
}

func TestTCPConnectionLimit(t *testing.T) {
	env := startServer(t, Config{}, TCPLimits{MaxConns: 2})
	var held []net.Conn
	for i := range 2 {
		c := dialTCP(t, env.addr)
		tcpQuery(t, c, uint16(i), "www.example.org.")
		if _, err := tcpRead(c); err != nil {
			t.Fatalf("connection %d within the limit: %v", i, err)
		}
		held = append(held, c)
	}
	over := dialTCP(t, env.addr)
	// The write may already fail: the server may have closed it.
	_, _ = over.Write([]byte{0, 12, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	if r, err := tcpRead(over); !closedByServer(err) {
		t.Errorf("connection beyond the limit answered %v, %v; want it closed", r, err)
	}
	// Closing one frees its place, once the server has noticed.
	held[0].Close()
	for attempt := 0; ; attempt++ {
		c := dialTCP(t, env.addr)
		tcpQuery(t, c, 10, "www.example.org.")
		if _, err := tcpRead(c); err == nil {
			break
		}
		if attempt == 100 {
			t.Fatalf("no connection accepted after one of the limit was closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	env := startServer(t, Config{}, TCPLimits{IdleTimeout: 50 * time.Millisecond})
	t.Run("silent", func(t *testing.T) {
		c := dialTCP(t, env.addr)
		if r, err := tcpRead(c); !closedByServer(err) {
			t.Errorf("idle connection: read = %v, %v; want it closed by the server", r, err)
		}
	})
	t.Run("after a query", func(t *testing.T) {
		c := dialTCP(t, env.addr)
		tcpQuery(t, c, 1, "www.example.org.")
		if _, err := tcpRead(c); err != nil {
			t.Fatalf("query: %v", err)
		}
		if r, err := tcpRead(c); !closedByServer(err) {
			t.Errorf("connection idle after a query: read = %v, %v; want it closed", r, err)
		}
	})
	t.Run("half a message", func(t *testing.T) {
		c := dialTCP(t, env.addr)
		if _, err := c.Write([]byte{0, 40, 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if r, err := tcpRead(c); !closedByServer(err) {
			t.Errorf("connection stalled mid-message: read = %v, %v; want it closed", r, err)
		}
	})
}

func TestTCPGarbage(t *testing.T) {
	env := startServer(t, Config{}, TCPLimits{})
	for _, tc := range []struct {
		name      string
		msg       []byte
		wantRcode int // -1: connection closed
	}{
		{"short", []byte{1, 2, 3}, -1},
		{"header of a query, broken body", []byte{0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w'}, dns.RcodeFormatError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTCP(t, env.addr)
			if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(tc.msg))), tc.msg...)); err != nil {
				t.Fatal(err)
			}
			r, err := tcpRead(c)
			if tc.wantRcode < 0 {
				if !closedByServer(err) {
					t.Errorf("%s: read = %v, %v; want the connection closed", tc.name, r, err)
				}
				return
			}
			if err != nil || r.Rcode != tc.wantRcode || r.Id != 7 {
				t.Errorf("%s: answer %v, %v; want id 7 and rcode %s", tc.name, r, err, dns.RcodeToString[tc.wantRcode])
			}
		})
	}
}

func TestServeTCPStops(t *testing.T) {
	s := New(Config{})
	if err := s.SetZone(loadTestZone(t, "example.org.", xfrZoneText, 3), Overlay{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var serveErr error
	wg.Go(func() { serveErr = s.ServeTCP(ctx, l) })
	c := dialTCP(t, l.Addr().String())
	tcpQuery(t, c, 1, "www.example.org.")
	if _, err := tcpRead(c); err != nil {
		t.Fatalf("query: %v", err)
	}
	cancel()
	wg.Wait() // returns only once the open connection's goroutine is done
	if serveErr != nil {
		t.Errorf("ServeTCP after cancel = %v, want nil", serveErr)
	}
	if r, err := tcpRead(c); !closedByServer(err) {
		t.Errorf("open connection after ServeTCP returned: read = %v, %v; want it closed", r, err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Errorf("listener still accepts after ServeTCP returned")
	}
}

// Plain queries signed with TSIG get signed answers over TCP too: the TCP
// writer verifies the request and signs with the same key.
func TestTCPSignedQuery(t *testing.T) {
	keys, algs := testKeys()
	env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
	for _, tc := range []struct {
		name, key, alg, secret string
		wantRcode              int
		wantVerified           bool
	}{
		{"good key", keySHA512, dns.HmacSHA512, secretSHA512, dns.RcodeSuccess, true},
		{"wrong secret", keySHA512, dns.HmacSHA512, wrongSecret, dns.RcodeNotAuth, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := new(dns.Msg).SetQuestion("www.example.org.", dns.TypeA)
			m.SetTsig(tc.key, tc.alg, 300, time.Now().Unix())
			c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, TsigSecret: map[string]string{tc.key: tc.secret}}
			r, _, err := c.Exchange(m, env.addr)
			if r == nil {
				t.Fatalf("exchange: %v", err)
			}
			if r.Rcode != tc.wantRcode || r.IsTsig() == nil || (err == nil) != tc.wantVerified {
				t.Errorf("signed query (%s): rcode %s, TSIG %v, verify error %v; want %s, signed, verified %v",
					tc.name, dns.RcodeToString[r.Rcode], r.IsTsig(), err, dns.RcodeToString[tc.wantRcode], tc.wantVerified)
			}
		})
	}
}
