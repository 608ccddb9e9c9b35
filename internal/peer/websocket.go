package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/coder/websocket"
)

// WebSocket carrier: the same peer links (TLS 1.3 and yamux inside) carried
// in a WebSocket, so a node can sit behind an HTTP reverse proxy or inside
// another program's web server. The WebSocket adds nothing to security; it
// is only a pipe.

// wsSubprotocol names the carrier in the WebSocket handshake.
const wsSubprotocol = "buoy-peer"

// IsWebSocketURL reports whether addr is a ws:// or wss:// URL rather than
// a host:port.
func IsWebSocketURL(addr string) bool {
	return strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://")
}

// DialWebSocket opens a raw connection to a node's WebSocket carrier.
func DialWebSocket(ctx context.Context, url string) (net.Conn, error) {
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{wsSubprotocol}})
	if err != nil {
		return nil, fmt.Errorf("websocket %s: %w", url, err)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if c.Subprotocol() != wsSubprotocol {
		c.Close(websocket.StatusPolicyViolation, "buoy peer carrier expected")
		return nil, fmt.Errorf("websocket %s: the server does not speak %s", url, wsSubprotocol)
	}
	c.SetReadLimit(-1)
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	return &urlConn{Conn: nc, remote: urlAddr(url)}, nil
}

// urlConn reports the URL it was dialed at as its remote address, so the
// node learns "this peer is reachable at this URL" as it does for host:port.
type urlConn struct {
	net.Conn
	remote urlAddr
}

func (c *urlConn) RemoteAddr() net.Addr { return c.remote }

type urlAddr string

func (a urlAddr) Network() string { return "websocket" }
func (a urlAddr) String() string  { return string(a) }

// WSListener turns WebSocket requests into raw connections for
// Network.Serve. Mount it as an http.Handler.
type WSListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// NewWSListener returns a listener with no connections yet.
func NewWSListener() *WSListener {
	return &WSListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// ServeHTTP upgrades the request and hands the connection to Accept. It
// returns when the connection is closed, so the web server keeps tracking it.
func (l *WSListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-l.closed:
		http.Error(w, "buoy peer carrier is closed", http.StatusServiceUnavailable)
		return
	default:
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{wsSubprotocol},
		// Peers are not browsers: the TLS inside authenticates them.
		InsecureSkipVerify: true,
	})
	if err != nil {
		return // Accept has answered the request
	}
	if c.Subprotocol() != wsSubprotocol {
		c.Close(websocket.StatusPolicyViolation, "speak "+wsSubprotocol)
		return
	}
	c.SetReadLimit(-1)
	done := make(chan struct{})
	nc := &wsConn{Conn: websocket.NetConn(context.Background(), c, websocket.MessageBinary), done: done}
	select {
	case l.conns <- nc:
	case <-l.closed:
		nc.Close()
		return
	case <-r.Context().Done():
		nc.Close()
		return
	}
	select {
	case <-done:
	case <-l.closed:
		nc.Close()
	}
}

// Accept waits for the next WebSocket connection.
func (l *WSListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and closes the connections it handed out.
func (l *WSListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr names the carrier.
func (l *WSListener) Addr() net.Addr { return wsAddr{} }

type wsAddr struct{}

func (wsAddr) Network() string { return "websocket" }
func (wsAddr) String() string  { return "websocket" }

// wsConn tells ServeHTTP when the connection is closed.
type wsConn struct {
	net.Conn
	done chan struct{}
	once sync.Once
}

func (c *wsConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.done) })
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
