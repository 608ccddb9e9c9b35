package pki_test

import (
	"fmt"
	"time"

	"buoy/internal/pki"
)

// The whole trust flow: bootstrap makes a CA and a token, a joiner checks
// the token, sends a CSR, and assembles its identity from the answer.
func Example() {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	// On the bootstrap node.
	ca, err := pki.NewCA("home", now)
	if err != nil {
		panic(err)
	}
	tok, err := pki.NewToken(ca.Hash())
	if err != nil {
		panic(err)
	}
	stored := pki.HashSecret(tok.Secret) // what the replicated state keeps
	printed := tok.String()              // what the operator copies

	// On the joiner.
	parsed, err := pki.ParseToken(printed)
	if err != nil {
		panic(err)
	}
	key, err := pki.NewNodeKey()
	if err != nil {
		panic(err)
	}
	csr, err := pki.NewCSR(key, "pi2")
	if err != nil {
		panic(err)
	}

	// On the leader, receiving the join request.
	fmt.Println("secret matches:", pki.SecretMatches(stored, parsed.Secret))
	certDER, err := ca.Sign(csr, "pi2", now, 90*24*time.Hour)
	if err != nil {
		panic(err)
	}

	// Back on the joiner.
	id, err := pki.NewIdentity(key, certDER, ca.DER)
	if err != nil {
		panic(err)
	}
	fmt.Println("name:", id.Name)
	fmt.Println("verify:", id.Verify(now))
	// Output:
	// secret matches: true
	// name: pi2
	// verify: <nil>
}

func ExampleValidName() {
	for _, name := range []string{"pi-2", "Pi2", "pi2.home"} {
		fmt.Println(pki.ValidName(name))
	}
	// Output:
	// <nil>
	// invalid node name: "Pi2" has uppercase 'P' at position 0; use lowercase
	// invalid node name: "pi2.home" contains '.' at position 3; a node name is a single DNS label
}

func ExampleParseToken() {
	_, err := pki.ParseToken("buoy1.abcdefgh.mzxw6ytboi2dkmrsgq3tmobzg")
	fmt.Println(err)
	// Output:
	// invalid join token: token has 3 dot-separated parts, want 4 (buoy1.ID.SECRET.CAHASH); was it cut short?
}
