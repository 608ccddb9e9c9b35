package buoy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"buoy/internal/api"
	"buoy/internal/peer"
	"buoy/internal/pki"
	"buoy/internal/store"
)

// logLines is a goroutine-safe log sink for one node.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns how many lines contain every one of subs.
func (l *logLines) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.buf.String()) {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

func (l *logLines) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCertNode starts a node from cfg (hooks adjusts it between New and
// Start) and waits until it is ready; the test closes it at the end.
func startCertNode(t *testing.T, ctx context.Context, cfg Config, hooks func(*Node)) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if hooks != nil {
		hooks(n)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatalf("Start(%s) = %v", cfg.Name, err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

// clusterCA returns the cluster CA from n's replicated state.
// stoppedSolo bootstraps a one-node cluster "solo", stops it and returns
// its config (to start it again) and its CA.
func stoppedSolo(t *testing.T, ctx context.Context) (Config, *pki.CA) {
	t.Helper()
	cfg := Config{Name: "solo", DataDir: t.TempDir(), PeerAddr: "127.0.0.1:0", HTTPAddr: "-", Bootstrap: true}
	n := startCertNode(t, ctx, cfg, nil)
	ca := clusterCA(t, n)
	n.Close()
	return cfg, ca
}

func clusterCA(t *testing.T, n *Node) *pki.CA {
	t.Helper()
	s := n.fsm.View()
	ca, err := pki.ParseCA(s.Cluster.CACertPEM, s.Cluster.CAKeyPEM)
	if err != nil {
		t.Fatalf("CA from the state: %v", err)
	}
	return ca
}

// shortenCert replaces the certificate in dir (its node stopped) by one
// for the same key, issued now-age by ca, with ttl to go from then.
func shortenCert(t *testing.T, ca *pki.CA, dir string, age, ttl time.Duration) *pki.Identity {
	t.Helper()
	id, err := pki.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	short, err := ca.Renew(id, time.Now().Add(-age), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.SaveIdentity(dir, short); err != nil {
		t.Fatal(err)
	}
	return short
}

// presented returns the certificate a node shows to a new handshake on
// its peer port (a join connection: no client certificate needed).
func presented(t *testing.T, n *Node) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", n.ListenAddr().String(), &tls.Config{
		RootCAs: n.id.Pool(), ServerName: n.Name(), NextProtos: []string{peer.ALPNJoin}, MinVersion: tls.VersionTLS13,
	})
	if err != nil {
		t.Fatalf("TLS dial to %s: %v", n.Name(), err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func serialOf(id *pki.Identity) string { return serialHex(id.Cert) }

// TestCertRenewal: a node whose certificate is due renews it by itself
// (once its state holds the CA), saves it, presents it to new handshakes,
// links again with it, and starts again with it. Then a renewal asked for
// through the HTTP API replaces it once more.
func TestCertRenewal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	a := startCertNode(t, ctx, Config{Name: "a", DataDir: filepath.Join(dir, "a"), PeerAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0", HTTPToken: "s3cret", Bootstrap: true}, nil)
	tok, err := a.CreateToken(ctx, TokenRequest{TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	bDir := filepath.Join(dir, "b")
	bCfg := Config{Name: "b", DataDir: bDir, PeerAddr: "127.0.0.1:0", HTTPAddr: "-",
		Join: []string{a.ListenAddr().String()}, Token: tok.Token}
	b := startCertNode(t, ctx, bCfg, nil)
	b.Close()

	// Ten minutes left of a lifetime of 1h10m: due.
	short := shortenCert(t, clusterCA(t, a), bDir, 0, 10*time.Minute)
	logs := &logLines{}
	bCfg.Logger = logs.logger()
	b = startCertNode(t, ctx, bCfg, nil)
	waitFor(t, "b's renewal", func() bool { return serialOf(b.cert.cur.Load()) != serialOf(short) })
	renewed := b.cert.cur.Load()
	if !renewed.Key.Equal(short.Key) {
		t.Error("renewed certificate has another key")
	}
	if min := time.Now().Add(certTTL - time.Hour); renewed.Cert.NotAfter.Before(min) {
		t.Errorf("renewed NotAfter = %v, want about now + %v", renewed.Cert.NotAfter, certTTL)
	}
	onDisk, err := pki.LoadIdentity(bDir)
	if err != nil || !bytes.Equal(onDisk.CertDER, renewed.CertDER) {
		t.Errorf("LoadIdentity(b) = %v, same as the renewed certificate: %v", err, err == nil && bytes.Equal(onDisk.CertDER, renewed.CertDER))
	}
	if got := presented(t, b); got.SerialNumber.Cmp(renewed.Cert.SerialNumber) != 0 || !got.NotAfter.Equal(renewed.Cert.NotAfter) {
		t.Errorf("b presents serial %X until %v, want the renewed %s until %v", got.SerialNumber, got.NotAfter, serialOf(renewed), renewed.Cert.NotAfter)
	}
	if logs.count("level=INFO", "node certificate renewed", "serial="+serialOf(renewed)) != 1 {
		t.Errorf("no INFO line for the renewal in b's log:\n%s", logs.buf.String())
	}

	// A new link between a and b, made with the renewed certificate,
	// carries a write from b to the leader a.
	cut := time.Now()
	b.net.Disconnect("a")
	waitFor(t, "a new link from b to a", func() bool {
		for _, l := range b.net.Links() {
			if l.Name == "a" && l.Since.After(cut) {
				return true
			}
		}
		return false
	})
	if _, err := b.KV().Put(ctx, "after-renewal", []byte("ok"), PutOptions{}); err != nil {
		t.Fatalf("Put through b after its renewal = %v", err)
	}

	// A restart uses the renewed certificate and does not renew again.
	b.Close()
	b = startCertNode(t, ctx, bCfg, nil)
	if got := serialOf(b.cert.cur.Load()); got != serialOf(renewed) {
		t.Errorf("after a restart b uses serial %s, want the renewed %s", got, serialOf(renewed))
	}
	if got := presented(t, b); got.SerialNumber.Cmp(renewed.Cert.SerialNumber) != 0 {
		t.Errorf("after a restart b presents serial %X, want %s", got.SerialNumber, serialOf(renewed))
	}

	// "buoy cert renew" on a, through the API behind its token.
	before := a.cert.cur.Load()
	var info CertInfo
	apiCall(t, a, "GET", "/v1/cert", &info)
	if info.Subject != "a" || info.Serial != serialOf(before) || info.KeyFingerprint != pki.KeyFingerprint(before.Cert) ||
		info.DaysLeft < 5*365-2 || !info.RenewAfter.Equal(pki.RenewAt(before.Cert).UTC()) {
		t.Errorf("GET /v1/cert = %+v, want a's certificate %s with five years to go", info, serialOf(before))
	}
	var r CertRenewal
	apiCall(t, a, "POST", "/v1/cert/renew", &r)
	after := a.cert.cur.Load()
	if r.Previous.Serial != serialOf(before) || r.Current.Serial != serialOf(after) || r.Current.Serial == r.Previous.Serial ||
		r.Current.KeyFingerprint != r.Previous.KeyFingerprint {
		t.Errorf("POST /v1/cert/renew = %+v, want %s replaced by a new serial for the same key", r, serialOf(before))
	}
	if got := presented(t, a); got.SerialNumber.Cmp(after.Cert.SerialNumber) != 0 {
		t.Errorf("a presents serial %X after a forced renewal, want %s", got.SerialNumber, serialOf(after))
	}
}

// apiCall sends method path to n's HTTP API with its token and decodes
// the JSON answer into out.
func apiCall(t *testing.T, n *Node, method, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.cfg.HTTPToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("%s %s: %v in %s", method, path, err, body)
	}
}

// TestCertExpiredAtStart: a node whose certificate has expired does not
// start, and says when it expired and what to do.
func TestCertExpiredAtStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, ca := stoppedSolo(t, ctx)
	dir := cfg.DataDir
	// Issued 50 minutes ago for 20 minutes: expired half an hour ago.
	expired := shortenCert(t, ca, dir, 50*time.Minute, 20*time.Minute)

	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(ctx)
	if err == nil {
		n.Close()
		t.Fatal("Start with an expired certificate = nil, want an error")
	}
	date := expired.Cert.NotAfter.UTC().Format(time.RFC3339)
	if !errors.Is(err, ErrCertExpired) || !strings.Contains(err.Error(), date) || !strings.Contains(err.Error(), "--join") {
		t.Errorf("Start with an expired certificate = %v, want ErrCertExpired naming %s and how to rejoin", err, date)
	}
}

// TestRenewalCA: a renewal waits for the state to hold the CA and this
// node, and refuses a departed member or one the cluster knows by
// another key.
func TestRenewalCA(t *testing.T) {
	ca, err := pki.NewCA("home", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "pi1")
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.Sign(csr, "pi1", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := pki.NewIdentity(key, der, ca.DER)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	withCA := store.Cluster{Name: "home", CACertPEM: certPEM, CAKeyPEM: keyPEM}
	pub := key.Public().(ed25519.PublicKey)
	otherPub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		state   store.State
		wantErr error  // errors.Is
		want    string // in the message
	}{
		{"no CA yet", store.State{Members: map[string]store.Member{"pi1": {Name: "pi1", PublicKey: pub}}}, errStateBehind, "no cluster CA"},
		{"not a member yet", store.State{Cluster: withCA}, errStateBehind, "does not list this node"},
		{"departed", store.State{Cluster: withCA, Members: map[string]store.Member{"pi1": {Name: "pi1", PublicKey: pub, Left: true}}}, ErrLeft, "departed"},
		{"another key", store.State{Cluster: withCA, Members: map[string]store.Member{"pi1": {Name: "pi1", PublicKey: otherPub}}}, nil, "another key"},
		{"member", store.State{Cluster: withCA, Members: map[string]store.Member{"pi1": {Name: "pi1", PublicKey: pub}}}, nil, ""},
		{"member recorded without a key", store.State{Cluster: withCA, Members: map[string]store.Member{"pi1": {Name: "pi1"}}}, nil, ""},
	}
	n := &Node{cfg: Config{Name: "pi1"}, id: id}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := n.renewalCA(&tt.state)
			switch {
			case tt.want == "" && (err != nil || !bytes.Equal(got.DER, ca.DER)):
				t.Errorf("renewalCA() = %v, want the cluster CA", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("renewalCA() = %v, want an error containing %q", err, tt.want)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("renewalCA() = %v, want it to wrap %v", err, tt.wantErr)
			}
			if errors.Is(err, errStateBehind) != errors.Is(err, api.ErrNotReady) {
				t.Errorf("renewalCA() = %v: waiting for the state must read as api.ErrNotReady", err)
			}
		})
	}
}

// TestSerialHex: serials print as openssl prints them, whole bytes.
func TestSerialHex(t *testing.T) {
	for in, want := range map[int64]string{0x0f34: "0F34", 0x1234: "1234", 0x5: "05", 0xabcdef: "ABCDEF"} {
		if got := serialHex(&x509.Certificate{SerialNumber: big.NewInt(in)}); got != want {
			t.Errorf("serialHex(%#x) = %q, want %q", in, got, want)
		}
	}
}
