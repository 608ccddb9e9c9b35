package netsim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func TestReadDeadline(t *testing.T) {
	tests := []struct {
		name     string
		run      func(c, s net.Conn) error // returns the error of the Read under test
		wantErr  bool
		wantTime time.Duration // fake time from start until run returns
	}{
		{"fires at the deadline", func(_, s net.Conn) error {
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := s.Read(make([]byte, 1))
			return err
		}, true, 5 * time.Second},
		{"SetDeadline sets it", func(_, s net.Conn) error {
			s.SetDeadline(time.Now().Add(3 * time.Second))
			_, err := s.Read(make([]byte, 1))
			return err
		}, true, 3 * time.Second},
		{"past deadline wins over data", func(c, s net.Conn) error {
			c.Write([]byte("x"))
			s.SetReadDeadline(time.Now().Add(-time.Second))
			_, err := s.Read(make([]byte, 1))
			return err
		}, true, 0},
		{"set in the past while blocked", func(_, s net.Conn) error {
			go func() {
				time.Sleep(2 * time.Second)
				s.SetReadDeadline(time.Unix(1, 0))
			}()
			_, err := s.Read(make([]byte, 1))
			return err
		}, true, 2 * time.Second},
		{"extended while blocked", func(_, s net.Conn) error {
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			go func() {
				time.Sleep(2 * time.Second)
				s.SetReadDeadline(time.Now().Add(6 * time.Second))
			}()
			_, err := s.Read(make([]byte, 1))
			return err
		}, true, 8 * time.Second},
		{"cleared while blocked", func(c, s net.Conn) error {
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			go func() {
				time.Sleep(2 * time.Second)
				s.SetReadDeadline(time.Time{})
				time.Sleep(8 * time.Second)
				c.Write([]byte("x"))
			}()
			_, err := s.Read(make([]byte, 1))
			return err
		}, false, 10 * time.Second},
		{"reset after expiry", func(c, s net.Conn) error {
			s.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := s.Read(make([]byte, 1)); !isTimeout(err) {
				return errors.New("first Read did not time out")
			}
			s.SetReadDeadline(time.Time{})
			c.Write([]byte("x"))
			_, err := s.Read(make([]byte, 1))
			return err
		}, false, time.Second},
		{"write deadline leaves reads alone", func(c, s net.Conn) error {
			s.SetWriteDeadline(time.Now().Add(time.Second))
			go func() {
				time.Sleep(4 * time.Second)
				c.Write([]byte("x"))
			}()
			_, err := s.Read(make([]byte, 1))
			return err
		}, false, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, a, _, ln := twoHosts(t)
				c, s := connect(t, a, ln, "198.51.100.1:7300")
				start := time.Now()
				err := tt.run(c, s)
				if tt.wantErr && !isTimeout(err) {
					t.Errorf("Read = %v, want a timeout wrapping os.ErrDeadlineExceeded", err)
				}
				if !tt.wantErr && err != nil {
					t.Errorf("Read = %v, want no error", err)
				}
				if d := time.Since(start); d != tt.wantTime {
					t.Errorf("Read returned after %v, want %v", d, tt.wantTime)
				}
			})
		})
	}
}

func TestWriteDeadline(t *testing.T) {
	tests := []struct {
		name string
		set  func(c net.Conn, t time.Time) error
	}{
		{"SetWriteDeadline", net.Conn.SetWriteDeadline},
		{"SetDeadline", net.Conn.SetDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, a, _, ln := twoHosts(t)
				c, _ := connect(t, a, ln, "198.51.100.1:7300")
				start := time.Now()
				tt.set(c, start.Add(3*time.Second))
				n, err := c.Write(make([]byte, BufferSize+10))
				if n != BufferSize || !isTimeout(err) {
					t.Errorf("Write(%d bytes) = %d, %v; want %d and a timeout", BufferSize+10, n, err, BufferSize)
				}
				if d := time.Since(start); d != 3*time.Second {
					t.Errorf("Write returned after %v, want 3s", d)
				}
			})
		})
	}
}

func TestBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, _, ln := twoHosts(t)
		c, s := connect(t, a, ln, "198.51.100.1:7300")
		msg := patterned(2*BufferSize + 5)
		var (
			n   int
			err error
		)
		writing := started(func() { n, err = c.Write(msg) })
		time.Sleep(time.Hour)
		synctest.Wait()
		if finished(writing) {
			t.Fatalf("Write of %d bytes with no reader = %d, %v; want it to block", len(msg), n, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(s, got); err != nil {
			t.Fatalf("ReadFull: %v", err)
		}
		<-writing
		if n != len(msg) || err != nil {
			t.Errorf("Write = %d, %v; want %d, nil", n, err, len(msg))
		}
		if !bytes.Equal(got, msg) {
			t.Error("data read differs from data written")
		}
	})
}

func TestFullDuplex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, _, ln := twoHosts(t)
		c, s := connect(t, a, ln, "198.51.100.1:7300")
		msg := patterned(4*BufferSize + 3)
		var dones []<-chan struct{}
		for _, p := range [][2]net.Conn{{c, s}, {s, c}} {
			w, r := p[0], p[1]
			dones = append(dones,
				started(func() {
					if _, err := w.Write(msg); err != nil {
						t.Errorf("Write: %v", err)
					}
				}),
				started(func() {
					got := make([]byte, len(msg))
					if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, msg) {
						t.Errorf("ReadFull: %v, or data differs", err)
					}
				}))
		}
		for _, d := range dones {
			<-d
		}
	})
}

func TestClose(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, c, s net.Conn)
	}{
		{"peer drains then reads EOF", func(t *testing.T, c, s net.Conn) {
			c.Write([]byte("bye"))
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got, err := io.ReadAll(s)
			if string(got) != "bye" || err != nil {
				t.Errorf("ReadAll = %q, %v; want %q, nil", got, err, "bye")
			}
			if n, err := s.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
			}
		}},
		{"closed end fails everything", func(t *testing.T, c, _ net.Conn) {
			c.Close()
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close = %v, want net.ErrClosed", err)
			}
			if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Close = %v, want net.ErrClosed", err)
			}
			if err := c.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
				t.Errorf("SetDeadline after Close = %v, want net.ErrClosed", err)
			}
			if err := c.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close = %v, want net.ErrClosed", err)
			}
		}},
		{"write after peer closed", func(t *testing.T, c, s net.Conn) {
			c.Close()
			if _, err := s.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
				t.Errorf("Write after peer Close = %v, want EPIPE", err)
			}
		}},
		{"unblocks own Read", func(t *testing.T, c, _ net.Conn) {
			var err error
			reading := started(func() { _, err = c.Read(make([]byte, 1)) })
			synctest.Wait()
			c.Close()
			<-reading
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("blocked Read after Close = %v, want net.ErrClosed", err)
			}
		}},
		{"unblocks own Write", func(t *testing.T, c, _ net.Conn) {
			var err error
			writing := started(func() { _, err = c.Write(make([]byte, BufferSize+1)) })
			synctest.Wait()
			c.Close()
			<-writing
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("blocked Write after Close = %v, want net.ErrClosed", err)
			}
		}},
		{"unblocks peer Read", func(t *testing.T, c, s net.Conn) {
			var err error
			reading := started(func() { _, err = s.Read(make([]byte, 1)) })
			synctest.Wait()
			c.Close()
			<-reading
			if err != io.EOF {
				t.Errorf("peer's blocked Read after Close = %v, want io.EOF", err)
			}
		}},
		{"unblocks peer Write", func(t *testing.T, c, s net.Conn) {
			var err error
			writing := started(func() { _, err = s.Write(make([]byte, BufferSize+1)) })
			synctest.Wait()
			c.Close()
			<-writing
			if !errors.Is(err, syscall.EPIPE) {
				t.Errorf("peer's blocked Write after Close = %v, want EPIPE", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, a, _, ln := twoHosts(t)
				c, s := connect(t, a, ln, "198.51.100.1:7300")
				tt.run(t, c, s)
			})
		})
	}
}

func TestCloseDuringPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, a, b, ln := twoHosts(t)
		c, s := connect(t, a, ln, "198.51.100.1:7300")
		n.Partition(a, b)
		c.Write([]byte("last words"))
		c.Close()
		var (
			got []byte
			err error
		)
		reading := started(func() { got, err = io.ReadAll(s) })
		time.Sleep(time.Hour)
		synctest.Wait()
		if finished(reading) {
			t.Fatalf("ReadAll across a cut = %q, %v; want it to block", got, err)
		}
		n.Heal(a, b)
		<-reading
		if string(got) != "last words" || err != nil {
			t.Errorf("ReadAll after heal = %q, %v; want %q, nil", got, err, "last words")
		}
	})
}

// selfSigned makes a throwaway ECDSA certificate valid for name, usable as
// its own CA, for both server and client authentication.
func selfSigned(t *testing.T, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now() // fake time under synctest: the certificate must cover it
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestTLS13(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, a, b, ln := twoHosts(t)
		n.SetLatency(a, b, 20*time.Millisecond)
		cert, pool := selfSigned(t, "node")
		cfg := &tls.Config{
			MinVersion:   tls.VersionTLS13,
			MaxVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			RootCAs:      pool,
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ServerName:   "node",
		}
		c, s := connect(t, a, ln, "198.51.100.1:7300")
		tc, ts := tls.Client(c, cfg), tls.Server(s, cfg)
		serving := started(func() {
			if err := ts.Handshake(); err != nil {
				t.Errorf("server Handshake: %v", err)
				return
			}
			if _, err := io.Copy(ts, ts); err != nil {
				t.Errorf("server echo: %v", err)
			}
			ts.Close()
		})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("client Handshake: %v", err)
		}
		if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("negotiated version %#x, want TLS 1.3", v)
		}
		if _, err := tc.Write([]byte("hello over tls")); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if err := tc.CloseWrite(); err != nil {
			t.Fatalf("CloseWrite: %v", err)
		}
		got, err := io.ReadAll(tc)
		if string(got) != "hello over tls" || err != nil {
			t.Errorf("echo = %q, %v; want %q, nil", got, err, "hello over tls")
		}
		<-serving
		tc.Close()
	})
}
