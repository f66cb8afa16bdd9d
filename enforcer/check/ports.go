package check

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// Port is a destination port and its protocol: what one probe packet
// carries.
type Port struct {
	Number   uint16
	Protocol policy.Protocol
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Number, p.Protocol) }

func comparePort(a, b Port) int {
	if c := cmp.Compare(a.Number, b.Number); c != 0 {
		return c
	}
	return cmp.Compare(a.Protocol, b.Protocol)
}

// ParsePort reads "80/TCP", "53/udp" or "80" (TCP).
func ParsePort(s string) (Port, error) {
	num, proto, hasProto := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return Port{}, fmt.Errorf("port %q: want a number 1-65535, optionally /TCP, /UDP or /SCTP", s)
	}
	p := Port{Number: uint16(n), Protocol: policy.ProtocolTCP}
	if hasProto {
		if p.Protocol, err = ParseProtocol(proto); err != nil {
			return Port{}, fmt.Errorf("port %q: %w", s, err)
		}
	}
	return p, nil
}

// ParsePorts reads a comma-separated list of ports ("80/TCP,53/UDP"),
// dropping repeats and keeping the order given.
func ParsePorts(s string) ([]Port, error) {
	var out []Port
	for part := range strings.SplitSeq(s, ",") {
		p, err := ParsePort(part)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// ParseProtocol reads TCP, UDP or SCTP in any case.
func ParseProtocol(s string) (policy.Protocol, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TCP":
		return policy.ProtocolTCP, nil
	case "UDP":
		return policy.ProtocolUDP, nil
	case "SCTP":
		return policy.ProtocolSCTP, nil
	}
	return 0, fmt.Errorf("protocol %q: want TCP, UDP or SCTP", s)
}

func protocolOf(p corev1.Protocol) policy.Protocol {
	if p == "" {
		return policy.ProtocolTCP
	}
	pr, err := ParseProtocol(string(p))
	if err != nil {
		return 0
	}
	return pr
}

// defaultPorts lists the ports worth probing: every containerPort, and
// every port a policy names, named ports as the pods declaring them
// number them, ranges by both ends.
func defaultPorts(c *policy.Cluster) []Port {
	set := map[Port]bool{}
	add := func(n int32, proto policy.Protocol) {
		if n > 0 && n <= 65535 && proto != 0 {
			set[Port{Number: uint16(n), Protocol: proto}] = true
		}
	}
	named := map[string][]Port{} // "name/proto" → numbers
	for _, pod := range c.Pods {
		for _, ctr := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
			for _, cp := range ctr.Ports {
				proto := protocolOf(cp.Protocol)
				add(cp.ContainerPort, proto)
				if cp.Name != "" && proto != 0 {
					k := cp.Name + "/" + proto.String()
					named[k] = append(named[k], Port{Number: uint16(cp.ContainerPort), Protocol: proto})
				}
			}
		}
	}
	for _, np := range c.Policies {
		var ports []Port
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				ports = append(ports, policyPorts(p.Protocol, p.Port, p.EndPort, named)...)
			}
		}
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				ports = append(ports, policyPorts(p.Protocol, p.Port, p.EndPort, named)...)
			}
		}
		for _, p := range ports {
			set[p] = true
		}
	}
	out := make([]Port, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.SortFunc(out, comparePort)
	return out
}

func policyPorts(proto *corev1.Protocol, port *intstr.IntOrString, end *int32, named map[string][]Port) []Port {
	pr := policy.ProtocolTCP
	if proto != nil {
		pr = protocolOf(*proto)
	}
	if port == nil || pr == 0 {
		return nil
	}
	if port.Type == intstr.String {
		return named[port.StrVal+"/"+pr.String()]
	}
	var out []Port
	for _, n := range []int32{port.IntVal, ptrOr(end, 0)} {
		if n > 0 && n <= 65535 {
			out = append(out, Port{Number: uint16(n), Protocol: pr})
		}
	}
	return out
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
