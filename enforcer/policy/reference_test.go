package policy

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// reference judges a packet straight from the API objects, as the
// NetworkPolicy spec reads, sharing no code with the compiler. It assumes
// valid policies and at most one host address.
type reference struct {
	c       *Cluster
	hostIPs []netip.Addr
}

// refPeer is one side of a packet.
type refPeer struct {
	addr netip.Addr
	host bool
}

func (r *reference) podAt(p refPeer) *corev1.Pod {
	if p.host {
		return nil
	}
	for i := range r.c.Pods {
		pod := &r.c.Pods[i]
		if pod.Spec.HostNetwork || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, ip := range pod.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil && a == p.addr {
				return pod
			}
		}
		if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil && a == p.addr {
			return pod
		}
	}
	return nil
}

func (r *reference) nsLabels(name string) labels.Set {
	out := labels.Set{corev1.LabelMetadataName: name}
	for _, n := range r.c.Namespaces {
		if n.Name == name {
			for k, v := range n.Labels {
				out[k] = v
			}
			out[corev1.LabelMetadataName] = name
		}
	}
	return out
}

func refSelector(s *metav1.LabelSelector) labels.Selector {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		panic(err)
	}
	return sel
}

func refTypes(np *networkingv1.NetworkPolicy) (ingress, egress bool) {
	if len(np.Spec.PolicyTypes) == 0 {
		return true, len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		ingress = ingress || t == networkingv1.PolicyTypeIngress
		egress = egress || t == networkingv1.PolicyTypeEgress
	}
	return ingress, egress
}

// allowed reports whether a new flow src→dst passes both ends.
func (r *reference) allowed(src, dst refPeer, proto Protocol, port uint16) bool {
	srcPod, dstPod := r.podAt(src), r.podAt(dst)
	if srcPod != nil && srcPod == dstPod {
		return true
	}
	return r.direction(srcPod, Egress, dst, dstPod, dstPod, proto, port) &&
		r.direction(dstPod, Ingress, src, srcPod, dstPod, proto, port)
}

// direction judges at pod (nil: not a pod, nothing to judge) against
// peer; server is the destination pod, whose ports named ports name.
func (r *reference) direction(pod *corev1.Pod, dir Direction, peer refPeer, peerPod, server *corev1.Pod, proto Protocol, port uint16) bool {
	if pod == nil {
		return true
	}
	isolated := false
	for i := range r.c.Policies {
		np := &r.c.Policies[i]
		if np.Namespace != pod.Namespace || !refSelector(&np.Spec.PodSelector).Matches(labels.Set(pod.Labels)) {
			continue
		}
		in, eg := refTypes(np)
		if dir == Ingress && in {
			isolated = true
			for _, rule := range np.Spec.Ingress {
				if r.ruleMatches(np, rule.From, rule.Ports, peer, peerPod, server, proto, port) {
					return true
				}
			}
		}
		if dir == Egress && eg {
			isolated = true
			for _, rule := range np.Spec.Egress {
				if r.ruleMatches(np, rule.To, rule.Ports, peer, peerPod, server, proto, port) {
					return true
				}
			}
		}
	}
	if !isolated {
		return true
	}
	return dir == Ingress && peer.host
}

func (r *reference) ruleMatches(np *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort,
	peer refPeer, peerPod, server *corev1.Pod, proto Protocol, port uint16) bool {
	peerOK := len(peers) == 0
	for _, p := range peers {
		if r.peerMatches(np, &p, peer, peerPod) {
			peerOK = true
			break
		}
	}
	if !peerOK {
		return false
	}
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		want := corev1.ProtocolTCP
		if p.Protocol != nil {
			want = *p.Protocol
		}
		if refProtocol(want) != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type == intstr.Int {
			end := p.Port.IntVal
			if p.EndPort != nil {
				end = *p.EndPort
			}
			if int32(port) >= p.Port.IntVal && int32(port) <= end {
				return true
			}
			continue
		}
		if server == nil {
			continue
		}
		for _, c := range server.Spec.Containers {
			for _, cp := range c.Ports {
				cproto := cp.Protocol
				if cproto == "" {
					cproto = corev1.ProtocolTCP
				}
				if cp.Name == p.Port.StrVal && cproto == want && cp.ContainerPort == int32(port) {
					return true
				}
			}
		}
	}
	return false
}

func refProtocol(p corev1.Protocol) Protocol {
	switch p {
	case corev1.ProtocolTCP:
		return ProtocolTCP
	case corev1.ProtocolUDP:
		return ProtocolUDP
	case corev1.ProtocolSCTP:
		return ProtocolSCTP
	}
	return 255
}

func (r *reference) peerMatches(np *networkingv1.NetworkPolicy, p *networkingv1.NetworkPolicyPeer, peer refPeer, peerPod *corev1.Pod) bool {
	if p.IPBlock != nil {
		addrs := []netip.Addr{peer.addr}
		if peer.host {
			addrs = r.hostIPs
		}
		if len(addrs) == 0 || !addrs[0].IsValid() {
			return false
		}
		for _, a := range addrs {
			if !netip.MustParsePrefix(p.IPBlock.CIDR).Contains(a) {
				return false
			}
			for _, e := range p.IPBlock.Except {
				if netip.MustParsePrefix(e).Contains(a) {
					return false
				}
			}
		}
		return true
	}
	if peerPod == nil {
		return false
	}
	if p.NamespaceSelector == nil {
		if peerPod.Namespace != np.Namespace {
			return false
		}
	} else if !refSelector(p.NamespaceSelector).Matches(r.nsLabels(peerPod.Namespace)) {
		return false
	}
	return p.PodSelector == nil || refSelector(p.PodSelector).Matches(labels.Set(peerPod.Labels))
}
