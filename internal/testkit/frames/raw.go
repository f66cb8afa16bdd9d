package frames

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/palisade-dev/palisade/internal/nsexec"
	"golang.org/x/sys/unix"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// HardwareAddr is the MAC of interface ifname in the namespace at
// netnsPath.
func HardwareAddr(netnsPath, ifname string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := nsexec.Do(netnsPath, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	return mac, err
}

// Send writes whole Ethernet frames onto interface ifname of the
// namespace at netnsPath, as they are.
func Send(netnsPath, ifname string, frames ...[]byte) error {
	return nsexec.Do(netnsPath, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // send only
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		defer unix.Close(fd)
		for _, f := range frames {
			if len(f) < 14 {
				return fmt.Errorf("send frame: %d bytes, no Ethernet header", len(f))
			}
			sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
			copy(sa.Addr[:], f[:6])
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("send frame: %w", err)
			}
		}
		return nil
	})
}

// Capture records every frame arriving on one interface (not those it
// sends), from inside its namespace: what reached that namespace,
// whatever its stack then did with it.
type Capture struct {
	fd     int
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	frames [][]byte
}

// Listen starts capturing on interface ifname of the namespace at
// netnsPath. Close stops it.
func Listen(netnsPath, ifname string) (*Capture, error) {
	c := &Capture{stop: make(chan struct{}), done: make(chan struct{}), fd: -1}
	err := nsexec.Do(netnsPath, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		if c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL))); err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		// A short read timeout, so that the reader sees Close.
		tv := unix.Timeval{Usec: 50_000}
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		return nil, fmt.Errorf("capture on %s: %w", ifname, err)
	}
	go c.read()
	return c, nil
}

func (c *Capture) read() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue // the read timeout: look at stop again
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		c.mu.Lock()
		c.frames = append(c.frames, append([]byte(nil), buf[:n]...))
		c.mu.Unlock()
	}
}

// Close stops the capture; the frames stay readable.
func (c *Capture) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	<-c.done
	return unix.Close(c.fd)
}

// Count returns how many captured frames carry an IP packet from src to
// TCP or UDP port dport (0: any packet from src).
func (c *Capture) Count(src netip.Addr, dport uint16) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		s, proto, l4, ok := IPOf(f)
		if !ok || s != src {
			continue
		}
		if dport == 0 || (proto == ProtoTCP || proto == ProtoUDP) && len(l4) >= 4 && binary.BigEndian.Uint16(l4[2:4]) == dport {
			n++
		}
	}
	return n
}
