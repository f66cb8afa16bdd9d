package policy

import (
	"fmt"
	"net/netip"
)

// NumericIdentity is a security identity as the datapath stores it.
type NumericIdentity uint32

// Reserved identities and the ranges the compiler allocates from. The
// values match bpf/include/abi.h.
const (
	// IdentityUnknown never names an endpoint. As a rule's peer it means
	// any peer at all (PeerAny).
	IdentityUnknown NumericIdentity = 0
	// IdentityWorld is any address no pod, host or ipBlock prefix covers.
	IdentityWorld NumericIdentity = 1
	// IdentityHost is the node itself. Ingress from it is always allowed.
	IdentityHost NumericIdentity = 2
	// FirstWorkloadIdentity is the first pod identity; pod identities stay
	// below FirstCIDRIdentity.
	FirstWorkloadIdentity NumericIdentity = 256
	// FirstCIDRIdentity is the first identity of a set of ipBlock
	// prefixes; CIDR identities never collide with pod identities.
	FirstCIDRIdentity NumericIdentity = 1 << 24
	// LastCIDRIdentity is the last allocatable CIDR identity.
	LastCIDRIdentity NumericIdentity = 1<<25 - 1
)

// PeerAny in a rule's Peer matches every source or destination, including
// addresses outside the cluster and the host.
const PeerAny = IdentityUnknown

// PeerAnyPod in a rule's Peer matches every pod, whatever its identity
// (IsPodIdentity), and nothing else: not the host, not the world, not an
// ipBlock range. A peer clause selecting every pod of every namespace
// (namespaceSelector: {} with no or an empty podSelector) compiles to one
// rule with it rather than one per pod identity. Matches
// IDENTITY_ANY_POD in bpf/include/abi.h.
const PeerAnyPod NumericIdentity = 4

// IsPodIdentity reports whether id is a workload (pod) identity: what
// PeerAnyPod matches.
func IsPodIdentity(id NumericIdentity) bool {
	return id >= FirstWorkloadIdentity && id < FirstCIDRIdentity
}

// PeerAnyIPv4 and PeerAnyIPv6 in a rule's Peer match every address of
// their family whose identity IsAddressedIdentity: an ipBlock of
// 0.0.0.0/0 or ::/0 without except compiles to one rule with one of them
// (plus the host's, when all its addresses are in the block) rather than
// one per identity inside it. Match IDENTITY_ANY_IPV4/6 in abi.h.
const (
	PeerAnyIPv4 NumericIdentity = 5
	PeerAnyIPv6 NumericIdentity = 6
)

// IsAddressedIdentity reports whether the family wildcards match id: the
// world or an allocated (pod or CIDR) identity, never the host.
func IsAddressedIdentity(id NumericIdentity) bool {
	return id == IdentityWorld || id >= FirstWorkloadIdentity
}

// FamilyWildcard is the wildcard peer of a's family.
func FamilyWildcard(a netip.Addr) NumericIdentity {
	if a.Unmap().Is4() {
		return PeerAnyIPv4
	}
	return PeerAnyIPv6
}

// IdentityKind says what an identity stands for.
type IdentityKind uint8

const (
	KindReserved IdentityKind = iota
	KindWorkload              // pods
	KindCIDR                  // addresses only ipBlocks describe
)

func (k IdentityKind) String() string {
	switch k {
	case KindReserved:
		return "reserved"
	case KindWorkload:
		return "workload"
	case KindCIDR:
		return "cidr"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Direction is relative to the local pod; values match abi.h.
type Direction uint8

const (
	Ingress Direction = 1
	Egress  Direction = 2
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Protocol is an IP protocol number; ProtocolAny (0) in a rule matches
// every protocol.
type Protocol uint8

const (
	ProtocolAny  Protocol = 0
	ProtocolTCP  Protocol = 6
	ProtocolUDP  Protocol = 17
	ProtocolSCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case ProtocolAny:
		return "any"
	case ProtocolTCP:
		return "TCP"
	case ProtocolUDP:
		return "UDP"
	case ProtocolSCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// hasPorts reports whether packets of p carry ports that rules can match.
func (p Protocol) hasPorts() bool {
	return p == ProtocolTCP || p == ProtocolUDP || p == ProtocolSCTP
}

// EnforcementMode is a namespace's datapath mode.
type EnforcementMode string

const (
	// ModeEnforce drops what no policy allows.
	ModeEnforce EnforcementMode = "enforce"
	// ModeAudit reports would-drops and lets them pass.
	ModeAudit EnforcementMode = "audit"
)

// AnnotationEnforcement on a Namespace selects its EnforcementMode
// ("enforce" or "audit"; absent means enforce).
const AnnotationEnforcement = "palisade.dev/enforcement"

// AnnotationSourceCIDRs on a Pod lists, comma-separated, the ranges it
// may send from besides its own addresses ("10.9.0.0/16,fd00::/64"): a VPN
// or router pod forwarding others' packets. The datapath drops any other
// source. Keys under palisade.dev/ are reserved, so only Palisade and the
// standard's privileged groups can set it in a governed namespace.
const AnnotationSourceCIDRs = "palisade.dev/source-cidrs"

// PolicyRef names a NetworkPolicy.
type PolicyRef struct {
	Namespace string
	Name      string
}

func (r PolicyRef) String() string { return r.Namespace + "/" + r.Name }

func comparePolicyRef(a, b PolicyRef) int {
	if a.Namespace != b.Namespace {
		return cmpString(a.Namespace, b.Namespace)
	}
	return cmpString(a.Name, b.Name)
}

// PodRef names a Pod.
type PodRef struct {
	Namespace string
	Name      string
}

func (r PodRef) String() string { return r.Namespace + "/" + r.Name }

func comparePodRef(a, b PodRef) int {
	if a.Namespace != b.Namespace {
		return cmpString(a.Namespace, b.Namespace)
	}
	return cmpString(a.Name, b.Name)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// NamedPort is a container port a policy refers to by name, as the pod
// declares it.
type NamedPort struct {
	Name     string
	Protocol Protocol
	Port     uint16
}

// Identity describes one numeric identity: everything policies can observe
// about the pods (or addresses) that carry it.
type Identity struct {
	ID   NumericIdentity
	Kind IdentityKind
	// Key is the canonical text the number was allocated for.
	Key string
	// Namespace, NamespaceLabels, Labels and NamedPorts are set for
	// workload identities. Labels are the pod's identity labels plus the
	// label keys some podSelector reads; NamespaceLabels are those some
	// namespaceSelector reads.
	Namespace       string
	NamespaceLabels map[string]string
	Labels          map[string]string
	NamedPorts      []NamedPort
	// Blocks are the ipBlocks (canonical "cidr except a,b" text) that
	// contain the addresses with this identity.
	Blocks []string
}

// IPEntry maps a prefix to an identity; lookups take the longest prefix.
// Pod and host addresses are full-length prefixes.
type IPEntry struct {
	Prefix   netip.Prefix
	Identity NumericIdentity
}

// LocalEndpoint is a pod the datapath enforces for.
type LocalEndpoint struct {
	Pod      PodRef
	IPs      []netip.Addr
	Identity NumericIdentity
	// IngressIsolated and EgressIsolated: some policy selects the pod for
	// that direction, so only what a rule allows passes.
	IngressIsolated bool
	EgressIsolated  bool
	// IngressIsolatedBy and EgressIsolatedBy name those policies, sorted.
	IngressIsolatedBy []PolicyRef
	EgressIsolatedBy  []PolicyRef
	Mode              EnforcementMode
	// SourceCIDRs are the ranges the pod may send from besides IPs
	// (AnnotationSourceCIDRs), masked, sorted, without duplicates.
	SourceCIDRs []netip.Prefix
	// Revision changes whenever anything that can alter a verdict for this
	// endpoint's own traffic changes (identity, flags, mode, its rules). It
	// is a digest, so it survives restarts; it is never 0.
	Revision uint32
}

// RuleKey is what the datapath looks a rule up by. Port 0 means any port
// of Protocol; Protocol 0 means any protocol (and then Port is 0). EndPort
// is 0 for a single port, else the inclusive end of [Port, EndPort].
type RuleKey struct {
	Local     NumericIdentity
	Peer      NumericIdentity // PeerAny: every peer
	Direction Direction
	Protocol  Protocol
	Port      uint16
	EndPort   uint16
}

func compareRuleKey(a, b RuleKey) int {
	switch {
	case a.Local != b.Local:
		return cmpNum(a.Local, b.Local)
	case a.Peer != b.Peer:
		return cmpNum(a.Peer, b.Peer)
	case a.Direction != b.Direction:
		return cmpNum(a.Direction, b.Direction)
	case a.Protocol != b.Protocol:
		return cmpNum(a.Protocol, b.Protocol)
	case a.Port != b.Port:
		return cmpNum(a.Port, b.Port)
	}
	return cmpNum(a.EndPort, b.EndPort)
}

func cmpNum[T ~uint8 | ~uint16 | ~uint32 | ~int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (k RuleKey) String() string {
	peer := "any"
	switch k.Peer {
	case PeerAny:
	case PeerAnyPod:
		peer = "any-pod"
	case PeerAnyIPv4:
		peer = "any-ipv4"
	case PeerAnyIPv6:
		peer = "any-ipv6"
	default:
		peer = fmt.Sprint(uint32(k.Peer))
	}
	return fmt.Sprintf("%d %s %s %s %s", k.Local, k.Direction, peer, k.Protocol, portText(k.Port, k.EndPort))
}

func portText(port, end uint16) string {
	switch {
	case port == 0:
		return "any-port"
	case end == 0:
		return fmt.Sprint(port)
	}
	return fmt.Sprintf("%d-%d", port, end)
}

// Rule allows traffic matching its key. Sources lists every policy part
// that produced it by RuleSource ID, ascending; the first is the rule id
// the datapath reports.
type Rule struct {
	RuleKey
	Sources []uint32
}

// RuleID is the id the datapath stores for this rule.
func (r Rule) RuleID() uint32 {
	if len(r.Sources) == 0 {
		return 0
	}
	return r.Sources[0]
}

// RuleSource is one allow clause of one policy: a rule of a direction and
// one of its peers. Peer is -1 when the rule lists no peers (all peers).
type RuleSource struct {
	ID        uint32
	Policy    PolicyRef
	Direction Direction
	Rule      int
	Peer      int
}

func (s RuleSource) String() string {
	peer := "all peers"
	if s.Peer >= 0 {
		peer = fmt.Sprintf("peer %d", s.Peer)
	}
	return fmt.Sprintf("%s %s rule %d (%s)", s.Policy, s.Direction, s.Rule, peer)
}

func (s RuleSource) key() string {
	return fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%d", s.Policy.Namespace, s.Policy.Name, s.Direction, s.Rule, s.Peer)
}
