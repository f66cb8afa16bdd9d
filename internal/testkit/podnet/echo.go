package podnet

import (
	"errors"
	"fmt"
	"io"
	"net"
)

// ServeEcho answers on port inside the namespace, TCP and UDP, IPv4 and
// IPv6: every byte of a connection and every datagram is sent back. It
// serves until the returned Closer is closed.
func (n Netns) ServeEcho(port int) (io.Closer, error) {
	addr := fmt.Sprintf(":%d", port)
	ln, err := n.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve echo in %s: %w", n, err)
	}
	pc, err := n.ListenPacket("udp", addr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("serve echo in %s: %w", n, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }() //nolint:errcheck // ends with the connection
		}
	}()
	go func() {
		buf := make([]byte, 65535)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:k], from) //nolint:errcheck // a lost echo is a probe's timeout
		}
	}()
	return echoServer{ln, pc}, nil
}

type echoServer struct {
	ln net.Listener
	pc net.PacketConn
}

func (s echoServer) Close() error { return errors.Join(s.ln.Close(), s.pc.Close()) }
