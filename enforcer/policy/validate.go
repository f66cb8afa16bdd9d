package policy

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// InvalidPolicyError reports a NetworkPolicy the API server would reject.
// The compiler keeps the pods it selects isolated in the directions it
// declares and takes no allow from it.
type InvalidPolicyError struct {
	Policy   PolicyRef
	Problems []string
}

func (e *InvalidPolicyError) Error() string {
	return fmt.Sprintf("invalid networkpolicy %s: %s", e.Policy, strings.Join(e.Problems, "; "))
}

// InvalidObjectError reports a Namespace or Pod field the compiler cannot
// use; Kind is "namespace" or "pod".
type InvalidObjectError struct {
	Kind    string
	Name    string
	Problem string
}

func (e *InvalidObjectError) Error() string {
	return fmt.Sprintf("invalid %s %s: %s", e.Kind, e.Name, e.Problem)
}

// ValidatePolicy returns what the API server (v1.36, strict CIDR
// validation) would reject in np, each naming the field.
func ValidatePolicy(np *networkingv1.NetworkPolicy) field.ErrorList {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	if np.Name == "" {
		errs = append(errs, field.Required(meta.Child("name"), ""))
	} else {
		for _, msg := range validation.IsDNS1123Subdomain(np.Name) {
			errs = append(errs, field.Invalid(meta.Child("name"), np.Name, msg))
		}
	}
	if np.Namespace != "" {
		for _, msg := range validation.IsDNS1123Label(np.Namespace) {
			errs = append(errs, field.Invalid(meta.Child("namespace"), np.Namespace, msg))
		}
	}
	spec := field.NewPath("spec")
	selOpts := metav1validation.LabelSelectorValidationOptions{}
	errs = append(errs, metav1validation.ValidateLabelSelector(&np.Spec.PodSelector, selOpts, spec.Child("podSelector"))...)
	for i := range np.Spec.Ingress {
		r := &np.Spec.Ingress[i]
		path := spec.Child("ingress").Index(i)
		for j := range r.Ports {
			errs = append(errs, validatePort(&r.Ports[j], path.Child("ports").Index(j))...)
		}
		for j := range r.From {
			errs = append(errs, validatePeer(&r.From[j], path.Child("from").Index(j))...)
		}
	}
	for i := range np.Spec.Egress {
		r := &np.Spec.Egress[i]
		path := spec.Child("egress").Index(i)
		for j := range r.Ports {
			errs = append(errs, validatePort(&r.Ports[j], path.Child("ports").Index(j))...)
		}
		for j := range r.To {
			errs = append(errs, validatePeer(&r.To[j], path.Child("to").Index(j))...)
		}
	}
	types := spec.Child("policyTypes")
	if len(np.Spec.PolicyTypes) > 2 {
		errs = append(errs, field.Invalid(types, np.Spec.PolicyTypes, "may not specify more than two policyTypes"))
		return errs
	}
	for i, t := range np.Spec.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			errs = append(errs, field.NotSupported(types.Index(i), t, []string{string(networkingv1.PolicyTypeIngress), string(networkingv1.PolicyTypeEgress)}))
		}
	}
	return errs
}

func validatePort(p *networkingv1.NetworkPolicyPort, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP && *p.Protocol != corev1.ProtocolUDP && *p.Protocol != corev1.ProtocolSCTP {
		errs = append(errs, field.NotSupported(path.Child("protocol"), *p.Protocol, []string{"TCP", "UDP", "SCTP"}))
	}
	switch {
	case p.Port == nil:
		if p.EndPort != nil {
			errs = append(errs, field.Invalid(path.Child("endPort"), *p.EndPort, "may not be specified when `port` is not specified"))
		}
	case p.Port.Type == intstr.Int:
		for _, msg := range validation.IsValidPortNum(int(p.Port.IntVal)) {
			errs = append(errs, field.Invalid(path.Child("port"), p.Port.IntVal, msg))
		}
		if p.EndPort != nil {
			if *p.EndPort < p.Port.IntVal {
				errs = append(errs, field.Invalid(path.Child("endPort"), *p.EndPort, "must be greater than or equal to `port`"))
			}
			for _, msg := range validation.IsValidPortNum(int(*p.EndPort)) {
				errs = append(errs, field.Invalid(path.Child("endPort"), *p.EndPort, msg))
			}
		}
	case p.Port.Type == intstr.String:
		if p.EndPort != nil {
			errs = append(errs, field.Invalid(path.Child("endPort"), *p.EndPort, "may not be specified when `port` is non-numeric"))
		}
		for _, msg := range validation.IsValidPortName(p.Port.StrVal) {
			errs = append(errs, field.Invalid(path.Child("port"), p.Port.StrVal, msg))
		}
	default:
		errs = append(errs, field.Invalid(path.Child("port"), p.Port.Type, "must be a number or a name"))
	}
	return errs
}

func validatePeer(p *networkingv1.NetworkPolicyPeer, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	selOpts := metav1validation.LabelSelectorValidationOptions{}
	n := 0
	if p.PodSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(p.PodSelector, selOpts, path.Child("podSelector"))...)
	}
	if p.NamespaceSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(p.NamespaceSelector, selOpts, path.Child("namespaceSelector"))...)
	}
	if p.IPBlock != nil {
		n++
		errs = append(errs, validateIPBlock(p.IPBlock, path.Child("ipBlock"))...)
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(path, "must specify a peer"))
	case n > 1 && p.IPBlock != nil:
		errs = append(errs, field.Forbidden(path, "may not specify both ipBlock and another peer"))
	}
	return errs
}

func validateIPBlock(b *networkingv1.IPBlock, path *field.Path) field.ErrorList {
	if b.CIDR == "" {
		return field.ErrorList{field.Required(path.Child("cidr"), "")}
	}
	var errs field.ErrorList
	cidr, err := parseStrictCIDR(b.CIDR)
	if err != nil {
		errs = append(errs, field.Invalid(path.Child("cidr"), b.CIDR, err.Error()))
	}
	for i, e := range b.Except {
		ep := path.Child("except").Index(i)
		except, err := parseStrictCIDR(e)
		if err != nil {
			errs = append(errs, field.Invalid(ep, e, err.Error()))
			continue
		}
		if cidr.IsValid() && (!cidr.Contains(except.Addr()) || except.Bits() <= cidr.Bits()) {
			errs = append(errs, field.Invalid(ep, e, "must be a strict subset of `cidr`"))
		}
	}
	return errs
}

// parseStrictCIDR accepts what the API server's strict CIDR validation
// accepts: no leading zeros, no IPv4-mapped IPv6, no bits past the prefix.
func parseStrictCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("must not have an IPv4-mapped IPv6 address")
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("must not have bits set beyond the prefix length")
	}
	return p, nil
}
