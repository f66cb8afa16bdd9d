package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Compile turns a cluster's objects into the State a datapath enforces.
//
// The State is usable even when err is not nil: err joins an
// *InvalidPolicyError for every policy the API server would reject (each
// compiled fail-closed: the pods it selects stay isolated in the
// directions it declares, with no allow from it) and an
// *InvalidObjectError for every namespace or pod field that could not be
// used. Only a failure to allocate numbers returns a nil State.
func Compile(c *Cluster, opts Options) (*State, error) {
	if c == nil {
		c = &Cluster{}
	}
	cp := &compiler{opts: opts, alloc: opts.Allocator, ns: map[string]*nsInfo{}, workloads: map[string]*workload{}}
	if cp.alloc == nil {
		cp.alloc = NewIdentityAllocator(nil)
	}
	if cp.opts.IdentityLabels == nil {
		cp.opts.IdentityLabels = defaultIdentityLabels
	}
	cp.readNamespaces(c.Namespaces)
	cp.readPolicies(c.Policies)
	cp.readPods(c.Pods)
	cp.readCIDRs()
	if err := cp.allocate(); err != nil {
		return nil, fmt.Errorf("compile policy state: %w", err)
	}
	st := cp.build()
	return st, errors.Join(cp.errs...)
}

type nsInfo struct {
	labels map[string]string
	mode   EnforcementMode
}

type podInfo struct {
	ref      PodRef
	ips      []netip.Addr
	byIP     []*workload // the identity of each address
	identity *workload   // the endpoint's identity
	local    bool

	// sources are the ranges of AnnotationSourceCIDRs.
	sources []netip.Prefix
}

type cidrIdentity struct {
	id     NumericIdentity
	key    string
	blocks []*ipBlock
}

type compiler struct {
	opts  Options
	alloc *IdentityAllocator
	errs  []error

	ns        map[string]*nsInfo
	policies  []*parsedPolicy
	blockSet  blockSet
	blocks    []*ipBlock
	keys      identityKeys
	sources   []RuleSource
	workloads map[string]*workload
	pods      []podInfo
	cidrs     map[string]*cidrIdentity
	// cidrPrefixes maps each ipBlock prefix to its CIDR identity key, ""
	// for world.
	cidrPrefixes map[netip.Prefix]string
	hostIPs      []netip.Addr
}

func (cp *compiler) fail(err error) { cp.errs = append(cp.errs, err) }

func (cp *compiler) readNamespaces(list []corev1.Namespace) {
	for i := range list {
		n := &list[i]
		if n.Name == "" {
			cp.fail(&InvalidObjectError{Kind: "namespace", Name: fmt.Sprintf("#%d", i), Problem: "metadata.name: Required value"})
			continue
		}
		if first, dup := cp.ns[n.Name]; dup {
			cp.fail(&InvalidObjectError{Kind: "namespace", Name: n.Name, Problem: "defined more than once; the first definition's labels are used, and it enforces unless every definition says audit"})
			if n.Annotations[AnnotationEnforcement] != string(ModeAudit) {
				first.mode = ModeEnforce
			}
			continue
		}
		info := &nsInfo{labels: make(map[string]string, len(n.Labels)+1), mode: ModeEnforce}
		for k, v := range n.Labels {
			info.labels[k] = v
		}
		// The API server always sets this label to the name.
		info.labels[corev1.LabelMetadataName] = n.Name
		switch m := n.Annotations[AnnotationEnforcement]; m {
		case "", string(ModeEnforce):
		case string(ModeAudit):
			info.mode = ModeAudit
		default:
			cp.fail(&InvalidObjectError{Kind: "namespace", Name: n.Name,
				Problem: fmt.Sprintf("metadata.annotations[%s]: Unsupported value: %q: supported values: \"enforce\", \"audit\" (enforcing)", AnnotationEnforcement, m)})
		}
		cp.ns[n.Name] = info
	}
}

// namespace returns a namespace's info, synthesizing one (as the API
// server would label it, enforcing) for a namespace no object describes.
func (cp *compiler) namespace(name string) *nsInfo {
	if info, ok := cp.ns[name]; ok {
		return info
	}
	info := &nsInfo{labels: map[string]string{corev1.LabelMetadataName: name}, mode: ModeEnforce}
	cp.ns[name] = info
	return info
}

func (cp *compiler) readPolicies(list []networkingv1.NetworkPolicy) {
	order := make([]*networkingv1.NetworkPolicy, len(list))
	for i := range list {
		order[i] = &list[i]
	}
	slices.SortStableFunc(order, func(a, b *networkingv1.NetworkPolicy) int {
		return comparePolicyRef(PolicyRef{namespaceOf(a.Namespace), a.Name}, PolicyRef{namespaceOf(b.Namespace), b.Name})
	})
	cp.keys = identityKeys{podLabels: map[string]struct{}{}, nsLabels: map[string]struct{}{}, namedPorts: map[string]struct{}{}}
	for _, k := range cp.opts.IdentityLabels {
		cp.keys.podLabels[k] = struct{}{}
	}
	for i, np := range order {
		p, problems := parsePolicy(np, &cp.blockSet)
		if i > 0 && namespaceOf(order[i-1].Namespace) == p.ref.Namespace && order[i-1].Name == p.ref.Name {
			// Which definition is meant is unknowable: the later ones
			// only isolate, so neither can allow more than it says.
			p.valid, p.rules = false, [3][]parsedRule{}
			problems = append(problems, "defined more than once; only the first definition's rules allow, every definition isolates")
		}
		if problems != nil {
			cp.fail(&InvalidPolicyError{Policy: p.ref, Problems: problems})
		}
		cp.namespace(p.ref.Namespace)
		cp.policies = append(cp.policies, p)
		// Every selector the compiler matches with adds its keys.
		selectorKeys(&np.Spec.PodSelector, cp.keys.podLabels)
		if !p.valid {
			continue
		}
		for _, dir := range []Direction{Ingress, Egress} {
			for _, r := range p.rules[dir] {
				var peers []networkingv1.NetworkPolicyPeer
				if dir == Egress {
					peers = np.Spec.Egress[r.index].To
				} else {
					peers = np.Spec.Ingress[r.index].From
				}
				for j := range peers {
					selectorKeys(peers[j].PodSelector, cp.keys.podLabels)
					selectorKeys(peers[j].NamespaceSelector, cp.keys.nsLabels)
				}
				for _, port := range r.ports {
					if port.name != "" {
						cp.keys.namedPorts[port.name] = struct{}{}
					}
				}
				if r.allPeers {
					cp.sources = append(cp.sources, RuleSource{Policy: p.ref, Direction: dir, Rule: r.index, Peer: -1})
				}
				for _, peer := range r.peers {
					cp.sources = append(cp.sources, RuleSource{Policy: p.ref, Direction: dir, Rule: r.index, Peer: peer.index})
				}
			}
		}
	}
	cp.blocks = cp.blockSet.sorted()
	cp.keys.blocks = cp.blocks
}

func (cp *compiler) readPods(list []corev1.Pod) {
	order := make([]*corev1.Pod, 0, len(list))
	for i := range list {
		p := &list[i]
		// Host-network pods carry the node's address and are not isolated
		// by NetworkPolicy; finished pods' addresses may already be reused.
		if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		order = append(order, p)
	}
	slices.SortStableFunc(order, func(a, b *corev1.Pod) int {
		return comparePodRef(PodRef{namespaceOf(a.Namespace), a.Name}, PodRef{namespaceOf(b.Namespace), b.Name})
	})
	hosts := map[netip.Addr]bool{}
	for _, h := range cp.opts.HostIPs {
		if h.IsValid() {
			h = h.Unmap()
			if !hosts[h] {
				hosts[h] = true
				cp.hostIPs = append(cp.hostIPs, h)
			}
		}
	}
	slices.SortFunc(cp.hostIPs, netip.Addr.Compare)
	owner := map[netip.Addr]PodRef{}
	for i, pod := range order {
		ref := PodRef{namespaceOf(pod.Namespace), pod.Name}
		if i > 0 && order[i-1].Name == pod.Name && namespaceOf(order[i-1].Namespace) == ref.Namespace {
			cp.fail(&InvalidObjectError{Kind: "pod", Name: ref.String(), Problem: "defined more than once; the first definition is used"})
			continue
		}
		ns := cp.namespace(ref.Namespace)
		info := podInfo{ref: ref, local: cp.opts.NodeName == "" || pod.Spec.NodeName == cp.opts.NodeName}
		if v, ok := pod.Annotations[AnnotationSourceCIDRs]; ok {
			sources, err := parseSourceCIDRs(v)
			if err != nil {
				// Fail closed: no extra source at all, not the valid part.
				cp.fail(&InvalidObjectError{Kind: "pod", Name: ref.String(), Problem: fmt.Sprintf("metadata.annotations[%s]: Invalid value: %q: %v (no extra source ranges are allowed)", AnnotationSourceCIDRs, v, err)})
			}
			info.sources = sources
		}
		for _, a := range podAddrs(pod, func(s string) {
			cp.fail(&InvalidObjectError{Kind: "pod", Name: ref.String(), Problem: fmt.Sprintf("status.podIPs: Invalid value: %q: must be a valid IP address", s)})
		}) {
			if hosts[a] {
				cp.fail(&InvalidObjectError{Kind: "pod", Name: ref.String(), Problem: fmt.Sprintf("address %s is the node's own; it stays the host's", a)})
				continue
			}
			if prev, taken := owner[a]; taken {
				cp.fail(&InvalidObjectError{Kind: "pod", Name: ref.String(), Problem: fmt.Sprintf("address %s also belongs to pod %s, which keeps it", a, prev)})
				continue
			}
			owner[a] = ref
			info.ips = append(info.ips, a)
		}
		base := newPodBase(pod, ref.Namespace, ns.labels, &cp.keys)
		for _, a := range info.ips {
			info.byIP = append(info.byIP, cp.workload(&base, blocksOf(a, cp.blocks)))
		}
		if len(info.byIP) > 0 {
			info.identity = info.byIP[0]
		} else {
			info.identity = cp.workload(&base, nil)
		}
		if info.local {
			info.identity.local = true
		}
		cp.pods = append(cp.pods, info)
	}
}

// podAddrs returns a pod's addresses, primary first, without duplicates.
func podAddrs(pod *corev1.Pod, bad func(string)) []netip.Addr {
	texts := make([]string, 0, 1+len(pod.Status.PodIPs))
	if pod.Status.PodIP != "" {
		texts = append(texts, pod.Status.PodIP)
	}
	for _, ip := range pod.Status.PodIPs {
		texts = append(texts, ip.IP)
	}
	var out []netip.Addr
	for _, t := range texts {
		a, err := netip.ParseAddr(t)
		if err != nil || a.Zone() != "" {
			bad(t)
			continue
		}
		a = a.Unmap()
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func (cp *compiler) workload(base *podBase, blocks []*ipBlock) *workload {
	key := workloadKey(base, blocks)
	if w, ok := cp.workloads[key]; ok {
		return w
	}
	w := &workload{key: key, ns: base.ns, nsLabels: base.nsLabels, labels: base.labels, ports: base.ports, blocks: blocks}
	cp.workloads[key] = w
	return w
}

// readCIDRs gives every ipBlock prefix the identity of the set of blocks
// containing it. Prefixes are nested or disjoint, so the longest prefix
// containing an address decides which blocks contain the address: that
// makes an LPM lookup exact, excepts included.
func (cp *compiler) readCIDRs() {
	cp.cidrs = map[string]*cidrIdentity{}
	cp.cidrPrefixes = map[netip.Prefix]string{}
	for _, b := range cp.blocks {
		for _, p := range append([]netip.Prefix{b.cidr}, b.except...) {
			if _, done := cp.cidrPrefixes[p]; done {
				continue
			}
			var in []*ipBlock
			for _, x := range cp.blocks {
				if x.containsPrefix(p) {
					in = append(in, x)
				}
			}
			if len(in) == 0 {
				cp.cidrPrefixes[p] = ""
				continue
			}
			key := cidrKey(in)
			if _, ok := cp.cidrs[key]; !ok {
				cp.cidrs[key] = &cidrIdentity{key: key, blocks: in}
			}
			cp.cidrPrefixes[p] = key
		}
	}
}

func (cp *compiler) allocate() error {
	ids, err := cp.alloc.workload.assign(sortedKeys(cp.workloads))
	if err != nil {
		return fmt.Errorf("allocate workload identities: %w", err)
	}
	for k, w := range cp.workloads {
		w.id = NumericIdentity(ids[k])
	}
	ids, err = cp.alloc.cidr.assign(sortedKeys(cp.cidrs))
	if err != nil {
		return fmt.Errorf("allocate cidr identities: %w", err)
	}
	for k, c := range cp.cidrs {
		c.id = NumericIdentity(ids[k])
	}
	keys := make([]string, len(cp.sources))
	byKey := make(map[string]int, len(cp.sources))
	for i, s := range cp.sources {
		keys[i] = s.key()
		byKey[keys[i]] = i
	}
	slices.Sort(keys)
	ids, err = cp.alloc.sources.assign(keys)
	if err != nil {
		return fmt.Errorf("allocate rule sources: %w", err)
	}
	for k, i := range byKey {
		cp.sources[i].ID = ids[k]
	}
	return nil
}

// selects reports whether policy p applies to workload w.
func (p *parsedPolicy) selects(w *workload) bool {
	return p.ref.Namespace == w.ns && (p.podSel == nil || p.podSel.Matches(w.labels))
}
