package pki

import (
	"errors"
	"strings"
	"testing"
)

// Fixed token parts for table tests.
const (
	testID     = "abcdefgh"
	testSecret = "mzxw6ytboi2dkmrsgq3tmobzga" // 26 chars, canonical (last char 'a')
	testHexCA  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testToken  = "buoy1." + testID + "." + testSecret + "." + testHexCA
)

func TestTokenRoundTrip(t *testing.T) {
	ca := newTestCA(t, "home")
	tok, err := NewToken(ca.Hash())
	if err != nil {
		t.Fatalf("NewToken() = %v", err)
	}
	if len(tok.ID) != TokenIDLen || len(tok.Secret) != TokenSecretLen || tok.CAHash != ca.Hash() {
		t.Errorf("NewToken() = ID %d chars, secret %d chars, CAHash %q; want %d, %d, %q",
			len(tok.ID), len(tok.Secret), tok.CAHash, TokenIDLen, TokenSecretLen, ca.Hash())
	}
	s := tok.String()
	if want := "buoy1." + tok.ID + "." + tok.Secret + "." + strings.TrimPrefix(ca.Hash(), "sha256:"); s != want {
		t.Errorf("String() = %q, want %q", s, want)
	}
	got, err := ParseToken("  " + s + "\n")
	if err != nil {
		t.Fatalf("ParseToken(String()) = %v", err)
	}
	if got != tok {
		t.Errorf("ParseToken(String()) = %+v, want %+v", got, tok)
	}
	other, err := NewToken(ca.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == tok.ID || other.Secret == tok.Secret {
		t.Errorf("two tokens share ID or secret: %q/%q", tok.ID, other.ID)
	}
}

func TestNewTokenBadHash(t *testing.T) {
	for _, h := range []string{"", testHexCA, "sha256:" + testHexCA[:63], "sha1:" + testHexCA, "sha256:" + strings.ToUpper(testHexCA)} {
		if _, err := NewToken(h); err == nil {
			t.Errorf("NewToken(%q) = nil error, want error", h)
		}
	}
}

func TestParseToken(t *testing.T) {
	replacePart := func(i int, v string) string {
		p := strings.Split(testToken, ".")
		p[i] = v
		return strings.Join(p, ".")
	}
	tests := []struct {
		name      string
		in        string
		wantInErr string // "" for valid
	}{
		{"valid", testToken, ""},
		{"valid with whitespace", "\t" + testToken + " \r\n", ""},
		{"empty", "", "empty"},
		{"blank", "  \n", "empty"},
		{"secret alone", testSecret, "does not start with"},
		{"wrong prefix", "buoy2" + testToken[5:], "does not start with"},
		{"uppercase prefix", "BUOY1" + testToken[5:], "does not start with"},
		{"kubeadm token", "abcdef.0123456789abcdef", "does not start with"},
		{"truncated in hash", testToken[:len(testToken)-10], "CA hash part has 54 characters, want 64"},
		{"truncated in secret", testToken[:20], "3 dot-separated parts"},
		{"truncated after prefix", "buoy1.", "2 dot-separated parts"},
		{"extra part", testToken + ".x", "5 dot-separated parts"},
		{"inner space", "buoy1." + testID + " ." + testSecret + "." + testHexCA, "ID part has 9 characters"},
		{"short ID", replacePart(1, "abcdefg"), "ID part has 7 characters, want 8"},
		{"ID with digit 1", replacePart(1, "abcdefg1"), "ID part has a character outside"},
		{"short secret", replacePart(2, testSecret[:25]), "secret part has 25 characters, want 26"},
		{"long secret", replacePart(2, testSecret+"a"), "secret part has 27 characters, want 26"},
		{"uppercase secret", replacePart(2, strings.ToUpper(testSecret)), "secret part has a character outside a-z and 2-7 at position 1"},
		{"secret with 0", replacePart(2, testSecret[:5]+"0"+testSecret[6:]), "at position 6"},
		{"secret with 8", replacePart(2, testSecret[:25]+"8"), "at position 26"},
		{"non-canonical secret", replacePart(2, testSecret[:25]+"b"), "not a canonical base32 value"},
		{"short CA hash", replacePart(3, testHexCA[:63]), "CA hash part has 63 characters"},
		{"CA hash with prefix", replacePart(3, "sha256:"+testHexCA), "CA hash part has 71 characters"},
		{"uppercase CA hash", replacePart(3, strings.ToUpper(testHexCA)), "not lowercase hex"},
		{"non-hex CA hash", replacePart(3, "g"+testHexCA[1:]), "not lowercase hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseToken(tt.in)
			checkErr(t, "ParseToken()", err, tt.wantInErr)
			if err != nil {
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("ParseToken() = %v, want it to wrap ErrInvalidToken", err)
				}
				// The input holds a secret: no part of it may reach the error.
				for _, part := range strings.Split(strings.TrimSpace(tt.in), ".") {
					if len(part) >= 6 && strings.Contains(err.Error(), part) {
						t.Errorf("ParseToken() error %q contains input part %q", err, part)
					}
				}
				return
			}
			want := Token{ID: testID, Secret: testSecret, CAHash: "sha256:" + testHexCA}
			if tok != want {
				t.Errorf("ParseToken() = %+v, want %+v", tok, want)
			}
		})
	}
}

func TestSecretMatches(t *testing.T) {
	tok, err := NewToken("sha256:" + testHexCA)
	if err != nil {
		t.Fatal(err)
	}
	h := HashSecret(tok.Secret)
	if len(h) != 64 || !isLowerHex(h) {
		t.Errorf("HashSecret() = %q, want 64 lowercase hex digits", h)
	}
	if strings.Contains(h, tok.Secret) {
		t.Errorf("HashSecret() contains the secret")
	}
	tests := []struct {
		name, hash, secret string
		want               bool
	}{
		{"right secret", h, tok.Secret, true},
		{"other secret", h, testSecret, false},
		{"empty secret", h, "", false},
		{"secret with one char changed", h, tok.Secret[:25] + "q", tok.Secret[25] == 'q'},
		{"empty hash", "", tok.Secret, false},
		{"uppercase hash", strings.ToUpper(h), tok.Secret, false},
		{"secret compared with itself", tok.Secret, tok.Secret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SecretMatches(tt.hash, tt.secret); got != tt.want {
				t.Errorf("SecretMatches(%q, secret) = %v, want %v", tt.hash, got, tt.want)
			}
		})
	}
}

// onlyTokenAlphabet reports whether s is made of base32 token characters
// only. Such strings of 12 or more characters cannot occur by chance in
// ParseToken's messages, whose words are shorter or contain other
// characters, so finding one there means input leaked.
func onlyTokenAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(tokenAlphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

func FuzzParseToken(f *testing.F) {
	f.Add(testToken)
	f.Add(" " + testToken + "\n")
	f.Add(testToken[:40])
	f.Add("buoy1....")
	f.Add("buoy1." + testID + "." + testSecret[:25] + "b." + testHexCA)
	f.Add(testSecret)
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("ParseToken() = %v, want it to wrap ErrInvalidToken", err)
			}
			for _, part := range strings.Split(strings.TrimSpace(s), ".") {
				if len(part) >= 12 && onlyTokenAlphabet(part) && strings.Contains(err.Error(), part) {
					t.Fatalf("ParseToken() error %q echoes input part %q", err, part)
				}
			}
			return
		}
		if got := tok.String(); got != strings.TrimSpace(s) {
			t.Fatalf("ParseToken(%q).String() = %q, want the trimmed input", s, got)
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("ParseToken(String()) = %+v, %v; want %+v", again, err, tok)
		}
	})
}
