package testenv

import (
	"io"
	"net"
	"sync"
	"time"
)

// Forwarder carries each connection accepted on a listener to a target
// address: an API server reached from inside a network namespace, or one
// a test cuts off on purpose (Close drops every connection at once).
type Forwarder struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// Forward serves ln until Close. Each connection is dialled to target from
// the calling process's network namespace (a goroutine's thread that never
// entered another one), whatever namespace ln was opened in.
func Forward(ln net.Listener, target string) *Forwarder {
	f := &Forwarder{ln: ln, target: target}
	go f.serve()
	return f
}

// Addr is the address clients connect to.
func (f *Forwarder) Addr() string { return f.ln.Addr().String() }

func (f *Forwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", f.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		if !f.track(c, up) {
			return
		}
		go func() { io.Copy(up, c); up.Close() }() //nolint:errcheck // ends with either side
		go func() { io.Copy(c, up); c.Close() }()  //nolint:errcheck // ends with either side
	}
}

func (f *Forwarder) track(c ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		for _, x := range c {
			x.Close()
		}
		return false
	}
	f.conns = append(f.conns, c...)
	return true
}

// Close stops accepting and drops every connection carried so far.
func (f *Forwarder) Close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}
