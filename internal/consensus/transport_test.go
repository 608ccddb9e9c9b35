package consensus

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// chanListener hands out the server ends of pipes a test makes.
type chanListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *chanListener) Addr() net.Addr { return nameAddr("test") }

// TestStreamLayerDrain: drain closes the streams Raft accepted and returns
// once every goroutine serving one has closed it, as the transport's do
// when their read fails; it gives up after its wait if one never does.
// Streams accepted afterwards are refused.
func TestStreamLayerDrain(t *testing.T) {
	ln := newChanListener()
	s := &streamLayer{name: "n1", ln: ln}
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	accept := func() net.Conn {
		t.Helper()
		a, b := net.Pipe()
		clients = append(clients, a)
		go func() { ln.conns <- b }()
		c, err := s.Accept()
		if err != nil {
			t.Fatalf("Accept = %v", err)
		}
		return c
	}
	var served sync.WaitGroup
	finished := make(chan struct{})
	for range 3 {
		c := accept()
		served.Go(func() { // the transport's handleConn: read until it fails, then close
			_, _ = io.Copy(io.Discard, c)
			<-finished // still answering a heartbeat when the read fails
			c.Close()
		})
	}
	stuck := accept() // served by nobody who will close it

	if s.drain(50 * time.Millisecond) {
		t.Fatal("drain returned true with streams still being served")
	}
	close(finished)
	served.Wait()
	if s.drain(time.Second) {
		t.Fatal("drain returned true with one stream never closed by its server")
	}
	stuck.Close()
	if !s.drain(10 * time.Second) {
		t.Fatal("drain returned false after every server closed its stream")
	}
	a, b := net.Pipe()
	defer a.Close()
	go func() { ln.conns <- b }()
	if c, err := s.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after drain = %v, %v; want net.ErrClosed", c, err)
	}
	if _, err := b.Write([]byte{1}); err == nil {
		t.Error("a stream accepted after drain was left open")
	}
}
