package certs

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// InjectCAFromAnnotation is cert-manager's cainjector annotation: on a
// webhook configuration it makes cainjector copy the CA of the named
// Certificate's Secret into every webhook's caBundle.
const InjectCAFromAnnotation = "cert-manager.io/inject-ca-from"

// CertManagerOptions configures the cert-manager mode.
type CertManagerOptions struct {
	// Namespace is Palisade's namespace. Required.
	Namespace string
	// ServiceName is the webhook Service. Required.
	ServiceName string
	// SecretName receives the serving certificate (the webhook mounts it).
	// Required.
	SecretName string
	// Name prefixes the objects: <Name>-selfsigned (Issuer), <Name>-ca
	// (Certificate, its Secret and the CA Issuer), <Name> (the serving
	// Certificate). Default "palisade-webhook".
	Name string
	// Durations default to DefaultCAValidity, DefaultServingValidity and
	// a third of the serving duration.
	CADuration, Duration, RenewBefore time.Duration
}

func (o *CertManagerOptions) complete() error {
	if o.Namespace == "" || o.ServiceName == "" || o.SecretName == "" {
		return errors.New("check cert-manager options: Namespace, ServiceName and SecretName are required")
	}
	if o.Name == "" {
		o.Name = "palisade-webhook"
	}
	if o.CADuration == 0 {
		o.CADuration = DefaultCAValidity
	}
	if o.Duration == 0 {
		o.Duration = DefaultServingValidity
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = o.Duration / 3
	}
	if o.RenewBefore <= 0 || o.RenewBefore >= o.Duration || o.Duration <= 0 || o.CADuration <= o.Duration {
		return fmt.Errorf("check cert-manager options: need 0 < RenewBefore (%s) < Duration (%s) < CADuration (%s)", o.RenewBefore, o.Duration, o.CADuration)
	}
	return nil
}

// CertificateName is the name of the serving Certificate, the one the
// cainjector annotation points at.
func (o CertManagerOptions) CertificateName() string {
	if o.Name == "" {
		return "palisade-webhook"
	}
	return o.Name
}

// CAInjectionAnnotations returns the annotation that both webhook
// configurations carry in cert-manager mode.
func CAInjectionAnnotations(o CertManagerOptions) map[string]string {
	return map[string]string{InjectCAFromAnnotation: o.Namespace + "/" + o.CertificateName()}
}

// CertManagerObjects returns the cert-manager objects of a private CA for
// the webhook, in the order to apply them: a self-signed Issuer, the CA
// Certificate it signs, an Issuer of that CA, and the serving Certificate
// (ECDSA P-256, server auth, the Service's DNS names) stored in SecretName.
// cert-manager renews the serving certificate RenewBefore its end with a
// new key; the webhook reloads it from the mounted Secret.
func CertManagerObjects(o CertManagerOptions) ([]*unstructured.Unstructured, error) {
	if err := o.complete(); err != nil {
		return nil, err
	}
	selfSigned, caName := o.Name+"-selfsigned", o.Name+"-ca"
	labels := map[string]any{"app.kubernetes.io/name": "palisade", "app.kubernetes.io/component": "webhook-certificates"}
	object := func(kind, name string, spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "cert-manager.io/v1",
			"kind":       kind,
			"metadata":   map[string]any{"name": name, "namespace": o.Namespace, "labels": copyMap(labels)},
			"spec":       spec,
		}}
	}
	issuerRef := func(name string) map[string]any {
		return map[string]any{"name": name, "kind": "Issuer", "group": "cert-manager.io"}
	}
	ecdsaKey := map[string]any{"algorithm": "ECDSA", "size": int64(256), "rotationPolicy": "Always"}
	dns := DNSNames(o.ServiceName, o.Namespace)
	dnsNames := make([]any, len(dns))
	for i, n := range dns {
		dnsNames[i] = n
	}
	return []*unstructured.Unstructured{
		object("Issuer", selfSigned, map[string]any{"selfSigned": map[string]any{}}),
		object("Certificate", caName, map[string]any{
			"isCA":                 true,
			"commonName":           "palisade-webhook-ca." + o.Namespace,
			"secretName":           caName,
			"duration":             hours(o.CADuration),
			"renewBefore":          hours(o.CADuration / 3),
			"privateKey":           copyMap(ecdsaKey),
			"issuerRef":            issuerRef(selfSigned),
			"usages":               []any{"cert sign", "crl sign", "digital signature"},
			"revisionHistoryLimit": int64(1),
		}),
		object("Issuer", caName, map[string]any{"ca": map[string]any{"secretName": caName}}),
		object("Certificate", o.CertificateName(), map[string]any{
			"commonName":           dns[0],
			"dnsNames":             dnsNames,
			"secretName":           o.SecretName,
			"duration":             hours(o.Duration),
			"renewBefore":          hours(o.RenewBefore),
			"privateKey":           copyMap(ecdsaKey),
			"issuerRef":            issuerRef(caName),
			"usages":               []any{"server auth", "digital signature"},
			"revisionHistoryLimit": int64(1),
			"secretTemplate":       map[string]any{"labels": copyMap(labels)},
		}),
	}, nil
}

// hours renders a duration as cert-manager's Go-duration strings, in
// whole hours where it is whole ("8760h" rather than "8760h0m0s").
func hours(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
