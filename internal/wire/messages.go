package wire

import "encoding/json"

// JoinRequest is the first and only frame a joining node sends on a join
// connection, after it has checked the cluster CA's hash.
type JoinRequest struct {
	Token    string `json:"token"`     // the full join token as printed by "buoy token create"
	Name     string `json:"name"`      // the name the joiner wants; must match the CSR
	CSR      []byte `json:"csr"`       // DER-encoded certificate request
	PeerPort int    `json:"peer_port"` // the port the joiner accepts peer links on (0: none)
	Dialed   string `json:"dialed"`    // the host:port the joiner dialed to reach us
	// Observed is filled by the node that accepted the join connection:
	// the joiner's source address as that node saw it.
	Observed string `json:"observed,omitempty"`
}

// JoinResponse answers a JoinRequest.
type JoinResponse struct {
	Error   string       `json:"error,omitempty"`
	Cert    []byte       `json:"cert,omitempty"`    // the joiner's signed certificate, DER
	CA      []byte       `json:"ca,omitempty"`      // the cluster CA certificate, DER
	Members []MemberAddr `json:"members,omitempty"` // who to connect to first
}

// MemberAddr is a member name with the address peers dial it at.
type MemberAddr struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Request is one call on an rpc stream. If Raw is set, Body is empty and
// the request's body follows as one raw frame (WriteRawFrame): bytes
// that JSON would have to carry as base64 and scan several times over.
// A node that predates Raw ignores the field, finds no handler for the
// raw operation and answers with an error (see Response).
type Request struct {
	Op   string          `json:"op"`
	Body json.RawMessage `json:"body,omitempty"`
	Raw  bool            `json:"raw,omitempty"`
}

// Response answers a Request. Code is a machine-readable error class
// (empty on success) so the caller can rebuild a sentinel error. Raw says
// a raw frame with the answer's body follows (only for a raw request
// that succeeded).
type Response struct {
	Error string          `json:"error,omitempty"`
	Code  string          `json:"code,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
	Raw   bool            `json:"raw,omitempty"`
}

// Relay stream operations.
const (
	RelayConnect = "connect" // to the relay: join me to Node
	RelayDeliver = "deliver" // from the relay: Node is calling you
)

// RelayHello opens a relay-kind stream. After a successful RelayAck the
// stream carries the two ends' own TLS session, which the relay cannot read.
type RelayHello struct {
	Op   string `json:"op"`
	Node string `json:"node"`
}

// RelayAck answers a RelayHello; an empty Error means the splice is ready.
type RelayAck struct {
	Error string `json:"error,omitempty"`
}
