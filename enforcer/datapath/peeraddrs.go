package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// peerAddrs returns the addresses the pod side of a veth carries: those
// of interface peerIndex in the network namespace the node's namespace
// knows as nsid, as the CNI plugin configured them inside the pod. A pod
// without CAP_NET_ADMIN cannot change them, unlike what it says in ARP
// or neighbour discovery. Link-local and loopback addresses are left out:
// they identify nothing beyond the link.
//
// rtnetlink answers for another namespace by its id (IFA_TARGET_NETNSID)
// only to a socket that asked for strict checking of dump requests
// (Linux 4.20 and later). It runs in the caller's network namespace.
func peerAddrs(nsid, peerIndex int) ([]netip.Addr, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("read pod addresses: netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil {
		return nil, fmt.Errorf("read pod addresses: strict netlink checks: %w", err)
	}
	tv := unix.Timeval{Sec: 2}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("read pod addresses: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("read pod addresses: bind netlink: %w", err)
	}
	var out []netip.Addr
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		addrs, err := dumpPeerAddrs(fd, family, nsid, peerIndex)
		if err != nil {
			return nil, fmt.Errorf("read pod addresses of interface %d in namespace id %d: %w", peerIndex, nsid, err)
		}
		out = append(out, addrs...)
	}
	return out, nil
}

func dumpPeerAddrs(fd, family, nsid, peerIndex int) ([]netip.Addr, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
	msg := nl.NewIfAddrmsg(family)
	msg.Index = uint32(peerIndex)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	if err := unix.Sendto(fd, req.Serialize(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("send address dump: %w", err)
	}
	var out []netip.Addr
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("receive address dump: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("parse address dump: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != req.Seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("short netlink error")
				}
				if errno := -int32(nl.NativeEndian().Uint32(m.Data[:4])); errno != 0 {
					return nil, syscall.Errno(errno)
				}
				return out, nil
			case unix.RTM_NEWADDR:
				if len(m.Data) < unix.SizeofIfAddrmsg {
					continue
				}
				hdr := nl.DeserializeIfAddrmsg(m.Data)
				if int(hdr.Index) != peerIndex {
					continue
				}
				attrs, err := nl.ParseRouteAttr(m.Data[unix.SizeofIfAddrmsg:])
				if err != nil {
					return nil, fmt.Errorf("parse address: %w", err)
				}
				for _, a := range attrs {
					if a.Attr.Type != unix.IFA_ADDRESS && a.Attr.Type != unix.IFA_LOCAL {
						continue
					}
					ip, ok := netip.AddrFromSlice(a.Value)
					ip = ip.Unmap()
					if ok && ip.IsGlobalUnicast() && !slices.Contains(out, ip) {
						out = append(out, ip)
					}
				}
			}
		}
	}
}
