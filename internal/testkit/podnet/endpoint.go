package podnet

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
)

// Endpoint is a namespace with addresses that serves and connects: a pod
// or an external host. Sockets it opens are closed with it, because an
// open socket keeps a deleted namespace (and its links) alive.
type Endpoint struct {
	netns  Netns
	v4, v6 netip.Addr

	mu      sync.Mutex
	closers []io.Closer
}

// Netns is the endpoint's namespace.
func (e *Endpoint) Netns() Netns { return e.netns }

// IPv4 is the endpoint's IPv4 address.
func (e *Endpoint) IPv4() netip.Addr { return e.v4 }

// IPv6 is the endpoint's IPv6 address; the zero Addr when it has none.
func (e *Endpoint) IPv6() netip.Addr { return e.v6 }

// Listen opens a stream listener inside the endpoint, closed at the
// latest when the endpoint goes.
func (e *Endpoint) Listen(network, address string) (net.Listener, error) {
	ln, err := e.netns.Listen(network, address)
	if err == nil {
		e.Track(ln)
	}
	return ln, err
}

// ListenPacket opens a datagram socket inside the endpoint, closed at
// the latest when the endpoint goes.
func (e *Endpoint) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := e.netns.ListenPacket(network, address)
	if err == nil {
		e.Track(pc)
	}
	return pc, err
}

// Dial connects from inside the endpoint (d nil: a zero Dialer). The
// caller closes the connection.
func (e *Endpoint) Dial(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
	return e.netns.Dial(ctx, d, network, address)
}

// Track closes c when the endpoint is deleted or its network closed.
func (e *Endpoint) Track(c io.Closer) {
	e.mu.Lock()
	e.closers = append(e.closers, c)
	e.mu.Unlock()
}

func (e *Endpoint) takeClosers() []io.Closer {
	e.mu.Lock()
	defer e.mu.Unlock()
	cs := e.closers
	e.closers = nil
	return cs
}

// errClosed is what closing an already closed socket returns.
var errClosed = net.ErrClosed
