package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidToken is wrapped by every error ParseToken returns.
var ErrInvalidToken = errors.New("invalid join token")

// TokenPrefix starts every join token. The digit is the token format
// version, so a later format can be told apart.
const TokenPrefix = "buoy1"

// Token part lengths, in base32 characters.
const (
	TokenIDLen     = 8  // 40 random bits: enough to name a token, not to guess one
	TokenSecretLen = 26 // 128 random bits
)

const (
	tokenIDBytes     = 5
	tokenSecretBytes = 16
	tokenAlphabet    = "abcdefghijklmnopqrstuvwxyz234567"
)

// tokenEncoding is lowercase RFC 4648 base32 without padding: no
// characters that need quoting in a shell, and nothing that looks alike
// (no 0/1/8/9).
var tokenEncoding = base32.NewEncoding(tokenAlphabet).WithPadding(base32.NoPadding)

// Token is a join token: printed by "buoy token create", pasted into
// "buoy agent --join HOST:PORT --token T". Its String form is one word.
type Token struct {
	ID     string // TokenIDLen lowercase base32 characters; public, names the token in list and revoke
	Secret string // TokenSecretLen lowercase base32 characters; never stored, only HashSecret of it
	CAHash string // the cluster CA's CertHash, "sha256:<64 hex>"
}

// NewToken makes a token with a random ID and secret for the cluster whose
// CA has the given hash (CA.Hash).
func NewToken(caHash string) (Token, error) {
	if err := validHash(caHash); err != nil {
		return Token{}, fmt.Errorf("new token: %w", err)
	}
	id, err := randomBase32(tokenIDBytes)
	if err != nil {
		return Token{}, fmt.Errorf("new token: %w", err)
	}
	secret, err := randomBase32(tokenSecretBytes)
	if err != nil {
		return Token{}, fmt.Errorf("new token: %w", err)
	}
	return Token{ID: id, Secret: secret, CAHash: caHash}, nil
}

func randomBase32(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random bytes: %w", err)
	}
	return tokenEncoding.EncodeToString(b), nil
}

// String returns the token as the user copies it:
// "buoy1.<ID>.<Secret>.<hex of CAHash>". It contains the secret: do not log
// it.
func (t Token) String() string {
	return TokenPrefix + "." + t.ID + "." + t.Secret + "." + strings.TrimPrefix(t.CAHash, hashPrefix)
}

// ParseToken parses what String returns; surrounding whitespace is
// ignored. It is strict about the prefix, the number of parts, their
// lengths and alphabets, and says which part is wrong. Its errors never
// contain any part of the input, since the input holds a secret.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, fmt.Errorf("%w: token is empty", ErrInvalidToken)
	}
	parts := strings.Split(s, ".")
	if parts[0] != TokenPrefix {
		return Token{}, fmt.Errorf("%w: token does not start with %q; copy the whole output of \"buoy token create\"", ErrInvalidToken, TokenPrefix+".")
	}
	if len(parts) != 4 {
		return Token{}, fmt.Errorf("%w: token has %d dot-separated parts, want 4 (%s.ID.SECRET.CAHASH); was it cut short?", ErrInvalidToken, len(parts), TokenPrefix)
	}
	if err := checkBase32(parts[1], TokenIDLen); err != nil {
		return Token{}, fmt.Errorf("%w: ID part %w", ErrInvalidToken, err)
	}
	if err := checkBase32(parts[2], TokenSecretLen); err != nil {
		return Token{}, fmt.Errorf("%w: secret part %w", ErrInvalidToken, err)
	}
	hash := parts[3]
	if len(hash) != 2*sha256.Size {
		return Token{}, fmt.Errorf("%w: CA hash part has %d characters, want %d hex digits", ErrInvalidToken, len(hash), 2*sha256.Size)
	}
	if !isLowerHex(hash) {
		return Token{}, fmt.Errorf("%w: CA hash part is not lowercase hex", ErrInvalidToken)
	}
	return Token{ID: parts[1], Secret: parts[2], CAHash: hashPrefix + hash}, nil
}

// checkBase32 reports why s is not exactly the canonical encoding of
// random bytes of the expected length. The error mentions positions and
// counts only, never characters of s. It is worded to follow "<part> part".
func checkBase32(s string, want int) error {
	if len(s) != want {
		return fmt.Errorf("has %d characters, want %d", len(s), want)
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(tokenAlphabet, s[i]) < 0 {
			return fmt.Errorf("has a character outside a-z and 2-7 at position %d (tokens are lowercase)", i+1)
		}
	}
	// 26 characters carry 130 bits for a 128-bit secret; the two spare bits
	// must be zero, so that exactly one string stands for each secret.
	b, err := tokenEncoding.DecodeString(s)
	if err != nil || tokenEncoding.EncodeToString(b) != s {
		return errors.New("is not a canonical base32 value (last character altered?)")
	}
	return nil
}

// HashSecret returns the lowercase hex SHA-256 of a token secret: what the
// replicated state stores instead of the secret. The secret has 128 random
// bits, so a fast unsalted hash is enough.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretMatches reports whether secret hashes to hash (from HashSecret),
// in time that does not depend on where they differ.
func SecretMatches(hash, secret string) bool {
	return subtle.ConstantTimeCompare([]byte(hash), []byte(HashSecret(secret))) == 1
}
