package netsim

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"testing/synctest"
)

func TestListen(t *testing.T) {
	unknownNetwork := func(err error) bool {
		var u net.UnknownNetworkError
		return errors.As(err, &u)
	}
	errno := func(e syscall.Errno) func(error) bool {
		return func(err error) bool { return errors.Is(err, e) }
	}
	tests := []struct {
		network, address string
		wantAddr         string           // when it succeeds
		wantErr          func(error) bool // when it fails
	}{
		{"tcp", ":7301", ":7301", nil},
		{"tcp", ":0", ":49152", nil},
		{"tcp", "198.51.100.1:7301", "198.51.100.1:7301", nil},
		{"tcp", "[2001:db8::b]:7301", "[2001:db8::b]:7301", nil},
		{"tcp", "[::ffff:198.51.100.1]:7301", "198.51.100.1:7301", nil},
		{"tcp", "0.0.0.0:7301", ":7301", nil},
		{"tcp", "[::]:7301", ":7301", nil},
		{"tcp4", ":7301", ":7301", nil},
		{"tcp6", ":7301", ":7301", nil},
		{"tcp", ":7300", "", errno(syscall.EADDRINUSE)},
		{"tcp", "198.51.100.1:7300", "", errno(syscall.EADDRINUSE)},
		{"tcp4", "0.0.0.0:7300", "", errno(syscall.EADDRINUSE)},
		{"tcp", "192.0.2.1:7301", "", errno(syscall.EADDRNOTAVAIL)},
		{"udp", ":53", "", unknownNetwork},
		{"tcp", "7301", "", isAddrError},
		{"tcp", ":http", "", isAddrError},
		{"tcp", ":65536", "", isAddrError},
		{"tcp", "b.example:7301", "", isAddrError},
		{"tcp4", "[2001:db8::b]:7301", "", isAddrError},
		{"tcp6", "198.51.100.1:7301", "", isAddrError},
		{"tcp6", "0.0.0.0:7301", "", isAddrError},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.address, func(t *testing.T) {
			_, _, b, _ := twoHosts(t)
			ln, err := b.Listen(tt.network, tt.address)
			if tt.wantErr != nil {
				var op *net.OpError
				if !tt.wantErr(err) || !errors.As(err, &op) {
					t.Errorf("Listen(%q, %q) = %v, %v; want a *net.OpError of the right kind", tt.network, tt.address, ln, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Listen(%q, %q): %v", tt.network, tt.address, err)
			}
			defer ln.Close()
			if got := ln.Addr().String(); got != tt.wantAddr {
				t.Errorf("Listen(%q, %q).Addr() = %s, want %s", tt.network, tt.address, got, tt.wantAddr)
			}
		})
	}
}

func TestListenFamiliesShareAPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b, _ := twoHosts(t)
		ln4 := mustListen(t, b, "tcp4", ":7400")
		ln6 := mustListen(t, b, "tcp6", ":7400")
		for _, tc := range []struct {
			address string
			ln      net.Listener
		}{{"198.51.100.1:7400", ln4}, {"[2001:db8::b]:7400", ln6}} {
			c, s := connect(t, a, tc.ln, tc.address)
			if got, want := s.LocalAddr().String(), c.RemoteAddr().String(); got != want {
				t.Errorf("accepted on %s, dialed %s", got, want)
			}
		}
	})
}

func TestListenPortZeroIsDialable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b, _ := twoHosts(t)
		ln := mustListen(t, b, "tcp", ":0")
		port := ln.Addr().(*net.TCPAddr).Port
		c, s := connect(t, a, ln, net.JoinHostPort("198.51.100.1", strconv.Itoa(port)))
		mustRoundTrip(t, c, s, "hi")
	})
}

func TestListenerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b, _ := twoHosts(t)
		ln, err := b.Listen("tcp", ":7400")
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		var acceptErr error
		accepting := started(func() { _, acceptErr = ln.Accept() })
		synctest.Wait()
		if finished(accepting) {
			t.Fatalf("Accept with nothing to accept returned %v", acceptErr)
		}
		if err := ln.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-accepting
		if !errors.Is(acceptErr, net.ErrClosed) {
			t.Errorf("blocked Accept after Close = %v, want net.ErrClosed", acceptErr)
		}
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
		if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close = %v, want net.ErrClosed", err)
		}
		// The port is free again.
		ln2 := mustListen(t, b, "tcp", ":7400")
		c, s := connect(t, a, ln2, "198.51.100.1:7400")
		mustRoundTrip(t, c, s, "new listener")
	})
}

func TestListenerCloseResetsBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b, _ := twoHosts(t)
		ln := mustListen(t, b, "tcp", ":7400")
		c, err := a.DialContext(context.Background(), "tcp", "198.51.100.1:7400")
		if err != nil {
			t.Fatalf("DialContext: %v", err)
		}
		defer c.Close()
		ln.Close()
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("Read on a connection never accepted = %v, want ECONNRESET", err)
		}
		if _, err := a.DialContext(context.Background(), "tcp", "198.51.100.1:7400"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial after listener Close = %v, want ECONNREFUSED", err)
		}
	})
}

func TestConcurrentAccepts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, _, ln := twoHosts(t)
		const n = 5
		accepted := make(chan net.Conn, n)
		var dones []<-chan struct{}
		for range n {
			dones = append(dones, started(func() {
				c, err := ln.Accept()
				if err != nil {
					t.Errorf("Accept: %v", err)
					return
				}
				accepted <- c
			}))
		}
		synctest.Wait()
		var clients []net.Conn
		for range n {
			c, err := a.DialContext(context.Background(), "tcp", "198.51.100.1:7300")
			if err != nil {
				t.Fatalf("DialContext: %v", err)
			}
			clients = append(clients, c)
		}
		for _, d := range dones {
			<-d
		}
		close(accepted)
		for c := range accepted {
			c.Close()
		}
		for _, c := range clients {
			c.Close()
		}
	})
}
