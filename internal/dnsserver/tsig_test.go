package dnsserver

import (
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestParseTSIGKey(t *testing.T) {
	for _, tc := range []struct {
		in                string
		name, alg, secret string
		wantErr           bool
	}{
		{"xfr-key:hmac-sha256:" + secretSHA256, "xfr-key.", dns.HmacSHA256, secretSHA256, false},
		{"hmac-sha512:Xfr-Key.:" + secretSHA512, "xfr-key.", dns.HmacSHA512, secretSHA512, false},
		{"k:HMAC-SHA1:" + secretSHA1, "k.", dns.HmacSHA1, secretSHA1, false},
		{"k:hmac-md5:" + secretSHA1, "", "", "", true},
		{"k:hmac-sha256:not base64!", "", "", "", true},
		{"k:hmac-sha256:", "", "", "", true},
		{"k:hmac-sha256", "", "", "", true},
		{":hmac-sha256:" + secretSHA256, "", "", "", true},
		{"a:b:c:d", "", "", "", true},
	} {
		name, alg, secret, err := ParseTSIGKey(tc.in)
		if tc.wantErr {
			if !errors.Is(err, ErrBadTSIGKey) {
				t.Errorf("ParseTSIGKey(%q) error = %v, want %v", tc.in, err, ErrBadTSIGKey)
			}
			continue
		}
		if err != nil || name != tc.name || alg != tc.alg || secret != tc.secret {
			t.Errorf("ParseTSIGKey(%q) = %q, %q, %q, %v; want %q, %q, %q", tc.in, name, alg, secret, err, tc.name, tc.alg, tc.secret)
		}
	}
}

func TestVerifyTSIG(t *testing.T) {
	keys, algs := testKeys()
	s := New(Config{TSIG: keys, TSIGAlgs: algs})
	sign := func(key, alg, secret string, when int64) []byte {
		m := new(dns.Msg).SetQuestion("example.org.", dns.TypeSOA)
		m.SetTsig(key, alg, 300, when)
		b, _, err := dns.TsigGenerate(m, secret, "", false)
		if err != nil {
			t.Fatalf("TsigGenerate: %v", err)
		}
		return b
	}
	nowUnix := func() int64 { return time.Now().Unix() }
	for _, tc := range []struct {
		name    string
		raw     []byte
		prov    dns.TsigProvider
		wantErr error
	}{
		{"good", sign(keySHA256, dns.HmacSHA256, secretSHA256, nowUnix()), s.TsigProvider(), nil},
		{"good sha512", sign(keySHA512, dns.HmacSHA512, secretSHA512, nowUnix()), s.TsigProvider(), nil},
		{"wrong secret", sign(keySHA256, dns.HmacSHA256, wrongSecret, nowUnix()), s.TsigProvider(), dns.ErrSig},
		{"unknown key", sign("other.", dns.HmacSHA256, secretSHA256, nowUnix()), s.TsigProvider(), dns.ErrSecret},
		{"algorithm the key is not bound to", sign(keySHA256, dns.HmacSHA512, secretSHA256, nowUnix()), s.TsigProvider(), dns.ErrKeyAlg},
		{"an hour old", sign(keySHA256, dns.HmacSHA256, secretSHA256, nowUnix()-3600), s.TsigProvider(), dns.ErrTime},
		{"no keys", sign(keySHA256, dns.HmacSHA256, secretSHA256, nowUnix()), nil, dns.ErrSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := append([]byte(nil), tc.raw...)
			err := verifyTSIG(tc.prov, raw)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("verifyTSIG(%s) = %v, want %v", tc.name, err, tc.wantErr)
			}
			if string(raw) != string(tc.raw) {
				t.Errorf("verifyTSIG(%s) changed its input", tc.name)
			}
		})
	}
}
