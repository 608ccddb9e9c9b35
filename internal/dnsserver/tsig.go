package dnsserver

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TSIG (RFC 8945) works as in miekg/dns: the listener verifies a signed
// request from its raw bytes and reports the verdict through
// dns.ResponseWriter.TsigStatus, and the writer signs every answer that
// carries a TSIG record, chaining the MACs of a multi-message answer once
// TsigTimersOnly(true) is called. Handlers only judge the verdict (checkTSIG)
// and add the TSIG stub to their answers.

// ErrBadTSIGKey is returned (wrapped, with the reason) by ParseTSIGKey.
var ErrBadTSIGKey = errors.New("bad TSIG key")

// tsigFudge is the time window, in seconds, of the TSIG records we make
// (RFC 8945 recommends 300).
const tsigFudge = 300

// TsigProvider returns the provider that verifies and signs with the keys of
// Config.TSIG, or nil when none is configured. A miekg dns.Server serving s
// must be given it (dns.Server.TsigProvider): the transfer and update
// handlers trust the server's TsigStatus, and without a provider miekg
// reports every signature as good.
func (s *Server) TsigProvider() dns.TsigProvider {
	if s.tsig == nil {
		return nil
	}
	return s.tsig
}

// ParseTSIGKey parses a key given as NAME:ALG:SECRET (the --tsig-key flag,
// the form of `nsupdate -y` and `kdig -y` with the algorithm first or in the
// middle: "hmac-sha256:name:secret" is accepted as well). ALG is hmac-sha1,
// hmac-sha224, hmac-sha256, hmac-sha384 or hmac-sha512; SECRET is base64. It
// returns the canonical key name and algorithm (dns.HmacSHA256 etc.).
func ParseTSIGKey(s string) (name, alg, secret string, err error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("%w: %q: want NAME:ALG:SECRET", ErrBadTSIGKey, s)
	}
	name, alg, secret = parts[0], parts[1], parts[2]
	if _, ok := tsigAlgorithm(name); ok {
		// kdig/nsupdate order: ALG:NAME:SECRET.
		name, alg = alg, name
	}
	calg, ok := tsigAlgorithm(alg)
	if !ok {
		return "", "", "", fmt.Errorf("%w: %q: unknown algorithm %q (use hmac-sha256, hmac-sha512 or hmac-sha1)", ErrBadTSIGKey, s, alg)
	}
	if _, ok := dns.IsDomainName(name); !ok || name == "" || name == "." {
		return "", "", "", fmt.Errorf("%w: %q: bad key name %q", ErrBadTSIGKey, s, name)
	}
	raw, err := base64.StdEncoding.DecodeString(secret)
	if err != nil || len(raw) == 0 {
		return "", "", "", fmt.Errorf("%w: %q: secret is not base64", ErrBadTSIGKey, s)
	}
	return canonical(name), calg, secret, nil
}

// tsigAlgorithm returns the canonical form of an HMAC algorithm name.
func tsigAlgorithm(alg string) (string, bool) {
	c := canonical(alg)
	switch c {
	case dns.HmacSHA1, dns.HmacSHA224, dns.HmacSHA256, dns.HmacSHA384, dns.HmacSHA512:
		return c, true
	}
	return "", false
}

// verifyTSIG verifies the TSIG of the raw request msg with prov. Its errors
// map to the TSIG error codes as tsigRefuse does: dns.ErrSecret and
// dns.ErrKeyAlg to BADKEY, dns.ErrTime to BADTIME, anything else to BADSIG.
func verifyTSIG(prov dns.TsigProvider, msg []byte) error {
	if prov == nil {
		return dns.ErrSecret
	}
	// TsigVerify rewrites the ID and ARCOUNT of the buffer it is given.
	return dns.TsigVerifyWithProvider(append([]byte(nil), msg...), prov, "", false)
}

// checkTSIG judges the TSIG of r as the listener verified it. It returns
// signed=false for an unsigned request. For a signed one it either answers
// r itself with NOTAUTH and the TSIG error (ok=false), or adds to m the
// TSIG stub that makes the writer sign the answer with the request's key.
func (s *Server) checkTSIG(w dns.ResponseWriter, r, m *dns.Msg) (signed, ok bool) {
	t := r.IsTsig()
	if t == nil {
		return false, true
	}
	err := w.TsigStatus()
	if err == nil && s.tsig == nil {
		// No key is configured, so nothing can have verified it.
		err = dns.ErrSecret
	}
	if err != nil {
		s.log.Info("dns request with bad TSIG", "peer", w.RemoteAddr(), "key", t.Hdr.Name, "err", err)
		s.tsigRefuse(w, m, r, t, err)
		return true, false
	}
	m.Extra = append(m.Extra, newTSIG(t.Hdr.Name, t.Algorithm, t.Fudge, r.Id))
	return true, true
}

// newTSIG returns the TSIG stub of a message to sign: the writer computes
// the MAC.
func newTSIG(key, alg string, fudge uint16, id uint16) *dns.TSIG {
	if fudge == 0 {
		fudge = tsigFudge
	}
	return &dns.TSIG{
		Hdr:        dns.RR_Header{Name: key, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  alg,
		Fudge:      fudge,
		OrigId:     id,
		TimeSigned: uint64(time.Now().Unix()),
	}
}

// notifyKey returns the key NOTIFY messages are signed with: the first of
// Config.TSIG in name order, so that the choice is stable, with its
// algorithm (hmac-sha256 when Config.TSIGAlgs does not say).
func (s *Server) notifyKey() (name, alg string, ok bool) {
	if len(s.cfg.TSIG) == 0 {
		return "", "", false
	}
	names := make([]string, 0, len(s.cfg.TSIG))
	for n := range s.cfg.TSIG {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(canonical(a), canonical(b)) })
	name = names[0]
	alg = dns.HmacSHA256
	for n, a := range s.cfg.TSIGAlgs {
		if canonical(n) == canonical(name) {
			alg = canonical(a)
		}
	}
	return canonical(name), alg, true
}
