package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// service is a dual-stack ClusterIP Service the suite created, with the
// EndpointSlices the (absent) endpointslice controller would have written.
type service struct {
	ns, name string
	v4, v6   netip.Addr
	backends []*pod
}

func (s *service) ref() string { return s.ns + "/" + s.name }

// servicePorts are every suite Service's ports. 7000 forwards to 9000: a
// policy's port is the backend's, never the Service's.
var servicePorts = []struct {
	name         string
	proto        corev1.Protocol
	port, target int32
}{
	{"tcp-80", corev1.ProtocolTCP, 80, 80},
	{"udp-80", corev1.ProtocolUDP, 80, 80},
	{"tcp-7000", corev1.ProtocolTCP, 7000, 9000},
}

// createService creates a Service selecting app=<app> in ns, its
// ClusterIPs allocated by the API server from both families' ranges, and
// one EndpointSlice per family naming backends.
func (w *world) createService(ctx context.Context, ns, name, app string, backends ...*pod) (*service, error) {
	requireDual := corev1.IPFamilyPolicyRequireDualStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeClusterIP,
			Selector:       map[string]string{"app": app},
			IPFamilyPolicy: &requireDual,
			IPFamilies:     []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol},
		},
	}
	for _, p := range servicePorts {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: p.name, Protocol: p.proto, Port: p.port, TargetPort: intstr.FromInt32(p.target)})
	}
	if err := w.client.Create(ctx, svc); err != nil {
		return nil, fmt.Errorf("create service %s/%s: %w", ns, name, err)
	}
	s := &service{ns: ns, name: name, backends: backends}
	for _, ip := range svc.Spec.ClusterIPs {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("service %s: clusterIP %q: %w", s.ref(), ip, err)
		}
		if a.Is4() {
			s.v4 = a
		} else {
			s.v6 = a
		}
	}
	if !s.v4.IsValid() || !s.v6.IsValid() {
		w.deleteService(ctx, s)
		return nil, fmt.Errorf("service %s: clusterIPs %v, want one of each family", s.ref(), svc.Spec.ClusterIPs)
	}
	for _, slice := range s.endpointSlices() {
		if err := w.client.Create(ctx, slice); err != nil {
			w.deleteService(ctx, s)
			return nil, fmt.Errorf("create endpointslice %s/%s: %w", ns, slice.Name, err)
		}
	}
	w.mu.Lock()
	w.services[s.ref()] = s
	w.mu.Unlock()
	return s, nil
}

// endpointSlices are the Service's slices, one per address family.
func (s *service) endpointSlices() []*discoveryv1.EndpointSlice {
	var ports []discoveryv1.EndpointPort
	for _, p := range servicePorts {
		ports = append(ports, discoveryv1.EndpointPort{Name: &p.name, Protocol: &p.proto, Port: &p.target})
	}
	var out []*discoveryv1.EndpointSlice
	for _, fam := range []struct {
		typ    discoveryv1.AddressType
		suffix string
		addr   func(*pod) netip.Addr
	}{
		{discoveryv1.AddressTypeIPv4, "v4", func(p *pod) netip.Addr { return p.v4 }},
		{discoveryv1.AddressTypeIPv6, "v6", func(p *pod) netip.Addr { return p.v6 }},
	} {
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: s.name + "-" + fam.suffix, Labels: map[string]string{
				discoveryv1.LabelServiceName: s.name,
				discoveryv1.LabelManagedBy:   "palisade-e2e",
			}},
			AddressType: fam.typ,
			Ports:       ports,
		}
		ready := true
		for _, b := range s.backends {
			nodeName := b.node.net.name
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fam.addr(b).String()},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready},
				NodeName:   &nodeName,
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: b.ns, Name: b.name},
			})
		}
		out = append(out, slice)
	}
	return out
}

// deleteService deletes the Service and its EndpointSlices (no garbage
// collector runs to follow owner references).
func (w *world) deleteService(ctx context.Context, s *service) error {
	w.mu.Lock()
	delete(w.services, s.ref())
	w.mu.Unlock()
	var errs []error
	objs := []client.Object{&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: s.name}}}
	for _, slice := range s.endpointSlices() {
		objs = append(objs, slice)
	}
	for _, obj := range objs {
		if err := w.client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// clusterIP is a suite Service's ClusterIP of one family.
func (w *world) clusterIP(ref string, v6 bool) (netip.Addr, error) {
	w.mu.Lock()
	s, ok := w.services[ref]
	w.mu.Unlock()
	if !ok {
		return netip.Addr{}, fmt.Errorf("no service %q", ref)
	}
	if v6 {
		return s.v6, nil
	}
	return s.v4, nil
}
