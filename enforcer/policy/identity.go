package policy

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// identityKeys is everything that can make two pods distinguishable to the
// compiled policies.
type identityKeys struct {
	podLabels  map[string]struct{}
	nsLabels   map[string]struct{}
	namedPorts map[string]struct{}
	blocks     []*ipBlock
}

// workload is one workload identity during compilation. Rules are derived
// from these fields only, never from the pods behind them: that is what
// makes identity-keyed rules exact.
type workload struct {
	id       NumericIdentity
	key      string
	ns       string
	nsLabels labels.Set
	labels   labels.Set
	ports    []NamedPort
	blocks   []*ipBlock
	local    bool
}

// namedPort returns the number of the pod's port called name for proto.
func (w *workload) namedPort(name string, proto Protocol) (uint16, bool) {
	for _, p := range w.ports {
		if p.Name == name && p.Protocol == proto {
			return p.Port, true
		}
	}
	return 0, false
}

func (w *workload) hasBlock(b *ipBlock) bool {
	for _, x := range w.blocks {
		if x == b {
			return true
		}
	}
	return false
}

// podBase is the address-independent part of a pod's identity.
type podBase struct {
	ns       string
	nsLabels labels.Set
	labels   labels.Set
	ports    []NamedPort
}

func newPodBase(pod *corev1.Pod, ns string, nsLabels map[string]string, keys *identityKeys) podBase {
	b := podBase{ns: ns, nsLabels: labels.Set{}, labels: labels.Set{}}
	for k := range keys.nsLabels {
		if v, ok := nsLabels[k]; ok {
			b.nsLabels[k] = v
		}
	}
	for k := range keys.podLabels {
		if v, ok := pod.Labels[k]; ok {
			b.labels[k] = v
		}
	}
	if len(keys.namedPorts) > 0 {
		add := func(ports []corev1.ContainerPort) {
			for _, p := range ports {
				if _, ok := keys.namedPorts[p.Name]; !ok || p.Name == "" || p.ContainerPort < 1 || p.ContainerPort > 65535 {
					continue
				}
				proto := ProtocolTCP
				if p.Protocol != "" {
					proto = protocolOf(p.Protocol)
				}
				b.ports = append(b.ports, NamedPort{Name: p.Name, Protocol: proto, Port: uint16(p.ContainerPort)})
			}
		}
		// Of the init containers only sidecars keep running to serve.
		for i := range pod.Spec.InitContainers {
			c := &pod.Spec.InitContainers[i]
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				add(c.Ports)
			}
		}
		for i := range pod.Spec.Containers {
			add(pod.Spec.Containers[i].Ports)
		}
		slices.SortFunc(b.ports, func(x, y NamedPort) int {
			if x.Name != y.Name {
				return cmpString(x.Name, y.Name)
			}
			if x.Protocol != y.Protocol {
				return cmpNum(x.Protocol, y.Protocol)
			}
			return cmpNum(x.Port, y.Port)
		})
		b.ports = slices.Compact(b.ports)
	}
	return b
}

// blocksOf returns the blocks containing addr, in block-key order.
func blocksOf(addr netip.Addr, blocks []*ipBlock) []*ipBlock {
	var out []*ipBlock
	for _, b := range blocks {
		if b.contains(addr) {
			out = append(out, b)
		}
	}
	return out
}

type workloadKeyJSON struct {
	Namespace       string            `json:"ns"`
	NamespaceLabels map[string]string `json:"nsLabels,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	NamedPorts      []string          `json:"ports,omitempty"`
	Blocks          []string          `json:"blocks,omitempty"`
}

// workloadKey is the canonical text of a workload identity.
func workloadKey(b *podBase, blocks []*ipBlock) string {
	k := workloadKeyJSON{Namespace: b.ns, NamespaceLabels: b.nsLabels, Labels: b.labels}
	for _, p := range b.ports {
		k.NamedPorts = append(k.NamedPorts, p.Name+"/"+p.Protocol.String()+"/"+strconv.Itoa(int(p.Port)))
	}
	for _, bl := range blocks {
		k.Blocks = append(k.Blocks, bl.key)
	}
	out, _ := json.Marshal(k)
	return "pod:" + string(out)
}

// cidrKey is the canonical text of a CIDR identity.
func cidrKey(blocks []*ipBlock) string {
	keys := make([]string, len(blocks))
	for i, b := range blocks {
		keys[i] = b.key
	}
	out, _ := json.Marshal(keys)
	return "cidr:" + string(out)
}

func blockKeys(blocks []*ipBlock) []string {
	if len(blocks) == 0 {
		return nil
	}
	out := make([]string, len(blocks))
	for i, b := range blocks {
		out[i] = b.key
	}
	return out
}
