// Package frames forges what a pod's kernel would never send, for tests
// that attack the datapath for real: it builds whole Ethernet frames
// (IPv4, IPv6, TCP, UDP, ICMPv6 neighbour discovery, ARP) with the
// checksums a receiving stack checks, writes them onto an interface inside
// a network namespace through an AF_PACKET socket (as a pod with
// CAP_NET_RAW can), and captures what arrives on an interface, from inside
// the receiver's namespace. Test support only: no product package imports
// it.
package frames
