package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// parseCertificates returns every certificate of a PEM document, in order.
// Anything else in it is an error: a bundle with junk is not trusted.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("parse certificates: unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificates: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("parse certificates: no PEM certificate found")
	}
	return certs, nil
}

// parsePrivateKey reads the first PEM private key: PKCS#8, SEC 1 (EC) or
// PKCS#1 (RSA), the encodings a user-provided Secret may carry.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse private key: no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("parse private key: unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse private key: unsupported key type %T", key)
	}
	return signer, nil
}

// parseECKey reads a CA key this package wrote.
func parseECKey(data []byte) (*ecdsa.PrivateKey, error) {
	signer, err := parsePrivateKey(data)
	if err != nil {
		return nil, err
	}
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse private key: want ECDSA, got %T", signer)
	}
	return key, nil
}

// keyMatches reports whether key is the private half of cert's public key.
func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// checkServing verifies a serving certificate and key as the API server
// and the TLS server will use them: the key matches, the certificate is
// within its validity at now, covers host, and, when roots are given,
// chains to one of them for server authentication. It returns the leaf.
func checkServing(certPEM, keyPEM []byte, roots []*x509.Certificate, host string, now time.Time) (*x509.Certificate, error) {
	if len(certPEM) == 0 {
		return nil, errors.New("tls.crt is missing or empty")
	}
	if len(keyPEM) == 0 {
		return nil, errors.New("tls.key is missing or empty")
	}
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tls.crt: %w", err)
	}
	leaf := chain[0]
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls.key: %w", err)
	}
	if !keyMatches(leaf, key) {
		return nil, errors.New("tls.key does not match the certificate in tls.crt")
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate in tls.crt expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("certificate in tls.crt is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return nil, fmt.Errorf("certificate in tls.crt does not cover %s (it names %s)", host, describeNames(leaf))
	}
	if roots == nil {
		return leaf, nil
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		DNSName:       host,
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, fmt.Errorf("certificate in tls.crt does not verify against ca.crt: %w", err)
	}
	return leaf, nil
}

func describeNames(c *x509.Certificate) string {
	if len(c.DNSNames) == 0 {
		return "no DNS names"
	}
	return strings.Join(c.DNSNames, ", ")
}
