package netsim

import (
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/yamux"
)

// Peer links run yamux over TLS over TCP; yamux leans on deadlines and
// keepalive timers, so it is a good check that the conn behaves like TCP
// under fake time, including noticing a partition through its keepalives.
func TestYamuxKeepaliveNoticesPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, a, b, ln := twoHosts(t)
		c, s := connect(t, a, ln, "198.51.100.1:7300")
		cfg := yamux.DefaultConfig()
		cfg.LogOutput = io.Discard
		cfg.KeepAliveInterval = 5 * time.Second
		cfg.ConnectionWriteTimeout = 3 * time.Second
		client, err := yamux.Client(c, cfg)
		if err != nil {
			t.Fatal(err)
		}
		server, err := yamux.Server(s, cfg)
		if err != nil {
			t.Fatal(err)
		}
		serving := started(func() {
			st, err := server.AcceptStream()
			if err != nil {
				t.Errorf("AcceptStream: %v", err)
				return
			}
			io.Copy(st, st)
			st.Close()
		})
		st, err := client.OpenStream()
		if err != nil {
			t.Fatalf("OpenStream: %v", err)
		}
		mustRoundTrip(t, st, st, "over yamux")

		start := time.Now()
		n.Partition(a, b)
		select {
		case <-client.CloseChan():
		case <-time.After(time.Minute):
			t.Fatal("yamux client did not notice the partition within a minute")
		}
		if d := time.Since(start); d > 5*time.Second+cfg.ConnectionWriteTimeout {
			t.Errorf("client noticed the cut after %v, want within one keepalive and its timeout", d)
		}
		server.Close()
		client.Close()
		<-serving
	})
}
