package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Keys of the self-managed Secret. tls.crt and tls.key make it a valid
// kubernetes.io/tls Secret; ca.crt is the bundle the webhook
// configurations carry; ca.key lets any replica sign the next serving
// certificate without a second Secret.
const (
	KeyCert   = corev1.TLSCertKey       // serving certificate (PEM)
	KeyKey    = corev1.TLSPrivateKeyKey // serving key (PEM)
	KeyCA     = "ca.crt"                // CA bundle (PEM): the signing CA first, then older CAs still trusted
	KeyCAKey  = "ca.key"                // signing CA key (PEM)
	keyPrefix = "certs.palisade.dev/"
	// AnnotationCATrustedSince records when the signing CA entered the
	// bundle; a routine reissue waits PropagationDelay after it so that
	// every API server has the new bundle before a leaf signed by that CA
	// is served.
	AnnotationCATrustedSince = keyPrefix + "ca-trusted-since"
	// AnnotationBundleGeneration counts the changes of ca.crt. It is
	// copied onto the webhook configurations with the bundle, and a
	// replica never replaces a bundle of a later generation: a replica
	// acting on an old read of the Secret cannot take a new CA back out.
	AnnotationBundleGeneration = keyPrefix + "bundle-generation"
)

// material is the content of the self-managed Secret.
type material struct {
	bundle        []*x509.Certificate // bundle[0] signs
	caKey         *ecdsa.PrivateKey
	caKeyPEM      []byte
	servingPEM    []byte
	servingKeyPEM []byte
	trustedSince  time.Time
	generation    int64
}

func (m *material) signer() *keyPair { return &keyPair{Cert: m.bundle[0], Key: m.caKey} }

// bundlePEM is the caBundle: the exact bytes injected into the webhook
// configurations, so equality with what is there is a byte comparison.
func (m *material) bundlePEM() []byte {
	var b bytes.Buffer
	for _, c := range m.bundle {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}) //nolint:errcheck // a bytes.Buffer does not fail
	}
	return b.Bytes()
}

func (m *material) secretData() map[string][]byte {
	return map[string][]byte{
		KeyCert:  m.servingPEM,
		KeyKey:   m.servingKeyPEM,
		KeyCA:    m.bundlePEM(),
		KeyCAKey: m.caKeyPEM,
	}
}

func (m *material) annotations() map[string]string {
	return map[string]string{
		AnnotationCATrustedSince:   m.trustedSince.UTC().Format(time.RFC3339),
		AnnotationBundleGeneration: strconv.FormatInt(m.generation, 10),
	}
}

// inspection is what a Secret's content is worth at one moment.
type inspection struct {
	exists     bool
	m          material
	serving    *x509.Certificate // nil when servingErr is set
	caErr      error             // the signing CA cannot be used: start over
	servingErr error             // the serving certificate cannot be served: reissue
	// oldBundle holds the CAs of a Secret that has to start over, so
	// that replicas still serving a leaf from them stay verifiable.
	oldBundle []*x509.Certificate
}

// inspect judges a Secret's data for host at now. It is pure: everything
// it needs is passed in.
func inspect(exists bool, data map[string][]byte, annotations map[string]string, host string, now time.Time) inspection {
	in := inspection{exists: exists}
	in.m.generation = parseGeneration(annotations)
	if !exists {
		in.caErr = fmt.Errorf("secret does not exist")
		return in
	}
	in.oldBundle = parseCertificatesLenient(data[KeyCA])
	bundle, err := parseCertificates(data[KeyCA])
	if err != nil {
		in.caErr = fmt.Errorf("%s: %w", KeyCA, err)
		return in
	}
	in.m.bundle = bundle
	ca := bundle[0]
	if !ca.IsCA {
		in.caErr = fmt.Errorf("%s: first certificate %q is not a CA", KeyCA, ca.Subject.CommonName)
		return in
	}
	key, err := parseECKey(data[KeyCAKey])
	if err != nil {
		in.caErr = fmt.Errorf("%s: %w", KeyCAKey, err)
		return in
	}
	if !keyMatches(ca, key) {
		in.caErr = fmt.Errorf("%s does not match the first certificate in %s", KeyCAKey, KeyCA)
		return in
	}
	if now.After(ca.NotAfter) {
		in.caErr = fmt.Errorf("CA %q expired at %s", ca.Subject.CommonName, ca.NotAfter.UTC().Format(time.RFC3339))
		return in
	}
	in.m.caKey, in.m.caKeyPEM = key, data[KeyCAKey]
	in.m.servingPEM, in.m.servingKeyPEM = data[KeyCert], data[KeyKey]
	if t, err := time.Parse(time.RFC3339, annotations[AnnotationCATrustedSince]); err == nil {
		in.m.trustedSince = t
	}
	in.serving, in.servingErr = checkServing(in.m.servingPEM, in.m.servingKeyPEM, bundle, host, now)
	return in
}

// parseGeneration reads AnnotationBundleGeneration; absent or bad is 0.
func parseGeneration(annotations map[string]string) int64 {
	g, err := strconv.ParseInt(annotations[AnnotationBundleGeneration], 10, 64)
	if err != nil || g < 0 {
		return 0
	}
	return g
}

// parseCertificatesLenient keeps whatever certificates parse.
func parseCertificatesLenient(data []byte) []*x509.Certificate {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return certs
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil && block.Type == "CERTIFICATE" {
			certs = append(certs, c)
		}
	}
}

// stillTrusted returns the unexpired CAs of old that are not first, in
// order and without duplicates: they stay in the bundle as long as a leaf
// they signed may still be served.
func stillTrusted(first *x509.Certificate, old []*x509.Certificate, now time.Time) []*x509.Certificate {
	out := []*x509.Certificate{first}
	for _, c := range old {
		if !c.IsCA || now.After(c.NotAfter) {
			continue
		}
		dup := false
		for _, o := range out {
			if bytes.Equal(o.Raw, c.Raw) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}
