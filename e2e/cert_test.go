package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

// certInfo is the JSON of "buoy cert --json".
type certInfo struct {
	Subject        string `json:"subject"`
	Serial         string `json:"serial"`
	KeyFingerprint string `json:"key_fingerprint"`
	NotAfter       string `json:"not_after"`
	DaysLeft       int    `json:"days_left"`
}

// servedSerial asks the node's peer port for its certificate with
// openssl, as an operator would, and returns its serial ("9B7C...").
func servedSerial(t *testing.T, n *node) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	// The join ALPN asks for no client certificate.
	cmd := exec.CommandContext(ctx, "sh", "-c",
		`openssl s_client -connect "$1" -alpn buoy-join/1 </dev/null 2>/dev/null | openssl x509 -noout -serial`, "sh", n.peerAddr)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl s_client to %s: %v: %s", n.peerAddr, err, out)
	}
	serial, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "serial=")
	if !ok {
		t.Fatalf("openssl printed %q, want serial=...", out)
	}
	return serial
}

// TestCertRenew: "buoy cert renew" on a running agent gives it a new
// certificate for the same key, which its peer port presents at once (as
// openssl sees it), which survives a restart, and with which it still
// links to the others (a write through it commits). A bad subcommand is
// refused.
func TestCertRenew(t *testing.T) {
	tool(t, "openssl")
	c := newCluster(t)
	d1 := c.bootstrap("c1")
	tok := d1.createToken()
	d2 := c.join("c2", d1, tok.Token)
	c.waitHealthy(2, d1, d2)

	var before certInfo
	if err := d2.cliJSON(&before, "cert"); err != nil {
		t.Fatal(err)
	}
	if before.Subject != "c2" || before.Serial == "" || before.DaysLeft < 1800 {
		t.Fatalf("buoy cert = %+v, want c2's certificate with about 5 years left", before)
	}
	if got := servedSerial(t, d2); got != before.Serial {
		t.Fatalf("peer port presents serial %s, buoy cert says %s", got, before.Serial)
	}

	var renewed struct {
		Previous certInfo `json:"previous"`
		Current  certInfo `json:"current"`
	}
	if err := d2.cliJSON(&renewed, "cert", "renew"); err != nil {
		t.Fatal(err)
	}
	cur := renewed.Current
	if renewed.Previous.Serial != before.Serial || cur.Serial == before.Serial || cur.KeyFingerprint != before.KeyFingerprint || cur.Subject != "c2" {
		t.Fatalf("buoy cert renew = %+v, want a new serial for the same key and name (was %+v)", renewed, before)
	}
	if got := servedSerial(t, d2); got != cur.Serial {
		t.Errorf("after renew the peer port presents serial %s, want the new %s", got, cur.Serial)
	}
	// buoy status names the expiry too.
	var st struct {
		CertNotAfter string `json:"cert_not_after"`
	}
	if err := d2.cliJSON(&st, "status"); err != nil || st.CertNotAfter != cur.NotAfter {
		t.Errorf("buoy status --json cert_not_after = %q, %v; want %q", st.CertNotAfter, err, cur.NotAfter)
	}
	if out, _, err := d2.cli("status"); err != nil || !strings.Contains(out, "certificate:   expires ") {
		t.Errorf("buoy status = %q, %v; want a certificate line", out, err)
	}

	t.Log("restart c2: it must load the new certificate and link with it")
	if code := d2.terminate(); code != 0 {
		t.Fatalf("c2 exited %d on SIGTERM", code)
	}
	d2.restart()
	c.waitHealthy(2, d1, d2)
	var after certInfo
	if err := d2.cliJSON(&after, "cert"); err != nil {
		t.Fatal(err)
	}
	if after.Serial != cur.Serial {
		t.Errorf("after a restart buoy cert says serial %s, want the renewed %s", after.Serial, cur.Serial)
	}
	if got := servedSerial(t, d2); got != cur.Serial {
		t.Errorf("after a restart the peer port presents serial %s, want %s", got, cur.Serial)
	}
	// A write through c2 goes to the leader over the renewed link.
	if _, _, err := runCLI("kv", "put", "--http-addr", d2.httpAddr, "cert/renewed", "yes"); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCLI("kv", "get", "--http-addr", d1.httpAddr, "cert/renewed"); err != nil || strings.TrimSpace(out) != "yes" {
		t.Errorf("kv get on c1 = %q, %v; want yes", out, err)
	}

	if _, stderr, err := d2.cli("cert", "bogus"); err == nil || !strings.Contains(stderr+err.Error(), "bogus") {
		t.Errorf("buoy cert bogus = %v (stderr %q), want an error naming the word", err, stderr)
	}
}
