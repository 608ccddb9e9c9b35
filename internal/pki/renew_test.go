package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestRenewAt(t *testing.T) {
	tests := []struct {
		name                string
		notBefore, notAfter time.Time
		want                time.Time
	}{
		{"three days", t0, t0.Add(72 * time.Hour), t0.Add(48 * time.Hour)},
		{"five years with backdate", t0.Add(-Backdate), t0.Add(5 * 365 * 24 * time.Hour),
			t0.Add(5*365*24*time.Hour - (5*365*24*time.Hour+Backdate)/3)},
		{"empty lifetime", t0, t0, t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &x509.Certificate{NotBefore: tt.notBefore, NotAfter: tt.notAfter}
			if got := RenewAt(c); !got.Equal(tt.want) {
				t.Errorf("RenewAt(%v..%v) = %v, want %v", tt.notBefore, tt.notAfter, got, tt.want)
			}
		})
	}
}

func TestRenew(t *testing.T) {
	ca := newTestCA(t, "home")
	id := newTestIdentity(t, ca, "pi1")
	oldDER := bytes.Clone(id.CertDER)
	later := t0.Add(20 * time.Hour) // less than a third of testTTL left
	if !later.After(RenewAt(id.Cert)) {
		t.Fatalf("test setup: %v is not past RenewAt = %v", later, RenewAt(id.Cert))
	}

	got, err := ca.Renew(id, later, testTTL)
	if err != nil {
		t.Fatalf("Renew() = %v", err)
	}
	if !bytes.Equal(id.CertDER, oldDER) {
		t.Error("Renew() changed the identity it was given")
	}
	if got.Name != "pi1" || !got.Key.Equal(id.Key) || !bytes.Equal(got.CADER, id.CADER) {
		t.Errorf("Renew() = name %q, same key %v, same CA %v; want pi1, true, true",
			got.Name, got.Key.Equal(id.Key), bytes.Equal(got.CADER, id.CADER))
	}
	if KeyFingerprint(got.Cert) != KeyFingerprint(id.Cert) {
		t.Errorf("KeyFingerprint(renewed) = %s, want the old key's %s", KeyFingerprint(got.Cert), KeyFingerprint(id.Cert))
	}
	if got.Cert.SerialNumber.Cmp(id.Cert.SerialNumber) == 0 {
		t.Error("Renew() kept the serial number")
	}
	if want := later.Add(-Backdate); !got.Cert.NotBefore.Equal(want) {
		t.Errorf("renewed NotBefore = %v, want %v", got.Cert.NotBefore, want)
	}
	if want := later.Add(testTTL); !got.Cert.NotAfter.Equal(want) {
		t.Errorf("renewed NotAfter = %v, want %v", got.Cert.NotAfter, want)
	}
	// Valid after the old one expired, as server and client, and it
	// survives a save and a load.
	if err := got.Verify(id.Cert.NotAfter.Add(time.Hour)); err != nil {
		t.Errorf("renewed Verify(after the old expiry) = %v", err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := SaveIdentity(dir, id); err != nil {
		t.Fatal(err)
	}
	if err := SaveIdentity(dir, got); err != nil {
		t.Fatalf("SaveIdentity(renewed) = %v", err)
	}
	loaded, err := LoadIdentity(dir)
	if err != nil || !bytes.Equal(loaded.CertDER, got.CertDER) {
		t.Errorf("LoadIdentity() after saving the renewal = %v (same certificate: %v)", err, err == nil && bytes.Equal(loaded.CertDER, got.CertDER))
	}
}

// TestRenewCappedByCA: near the end of the CA's life a renewal ends with
// the CA instead of failing.
func TestRenewCappedByCA(t *testing.T) {
	ca := newTestCA(t, "home")
	id := newTestIdentity(t, ca, "pi1")
	now := ca.Cert.NotAfter.Add(-10 * 24 * time.Hour)
	got, err := ca.Renew(id, now, 5*365*24*time.Hour)
	if err != nil {
		t.Fatalf("Renew(10 days before the CA expires) = %v", err)
	}
	if !got.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("renewed NotAfter = %v, want the CA's %v", got.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestRenewRefuses(t *testing.T) {
	ca := newTestCA(t, "home")
	other := newTestCA(t, "home") // same name, another key
	id := newTestIdentity(t, ca, "pi1")
	renamed := *id
	renamed.Name = "pi2"
	tests := []struct {
		name    string
		ca      *CA
		id      *Identity
		now     time.Time
		ttl     time.Duration
		want    string
		wantErr error
	}{
		{name: "another CA", ca: other, id: id, now: t0, ttl: testTTL, want: "not the identity's CA", wantErr: ErrCAMismatch},
		{name: "nil identity", ca: ca, id: nil, now: t0, ttl: testTTL, want: "nil identity"},
		{name: "name differs from certificate", ca: ca, id: &renamed, now: t0, ttl: testTTL, want: `certificate is for "pi1"`},
		{name: "zero ttl", ca: ca, id: id, now: t0, ttl: 0, want: "not positive"},
		{name: "CA expired", ca: ca, id: id, now: ca.Cert.NotAfter.Add(time.Second), ttl: testTTL, want: "CA expired"},
		{name: "CA not yet valid", ca: ca, id: id, now: ca.Cert.NotBefore.Add(-time.Hour), ttl: testTTL, want: "CA is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ca.Renew(tt.id, tt.now, tt.ttl)
			checkErr(t, "Renew()", err, tt.want)
			if got != nil {
				t.Errorf("Renew() = %v, want nil identity with the error", got.Cert.SerialNumber)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Renew() = %v, want it to wrap %v", err, tt.wantErr)
			}
		})
	}
}

func TestKeyFingerprint(t *testing.T) {
	ca := newTestCA(t, "home")
	a, b := newTestIdentity(t, ca, "pi1"), newTestIdentity(t, ca, "pi1")
	fa := KeyFingerprint(a.Cert)
	if err := validHash(fa); err != nil {
		t.Errorf("KeyFingerprint() = %q: %v", fa, err)
	}
	if fa == KeyFingerprint(b.Cert) {
		t.Errorf("two keys have the same fingerprint %s", fa)
	}
}
