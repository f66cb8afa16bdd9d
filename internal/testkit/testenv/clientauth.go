package testenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// APIServerClientName is the common name of the client certificate the
// test API server presents to webhooks.
const APIServerClientName = "kube-apiserver-webhook-client"

// WebhookClientAuth is the API server's side of webhook client
// authentication, as a cluster administrator sets it up: a CA, a client
// certificate it signed for the API server, a kubeconfig naming that
// certificate for every webhook host ("*"), and the AdmissionConfiguration
// (--admission-control-config-file) pointing both webhook admission
// plugins at that kubeconfig.
type WebhookClientAuth struct {
	// CAFile is the PEM CA the webhook trusts (--client-ca-file).
	CAFile string
	// ClientName is the API server's certificate's common name
	// (--client-allowed-names).
	ClientName string
	// ConfigFile is the AdmissionConfiguration given to the API server.
	ConfigFile string

	ca    *x509.Certificate
	caKey crypto.Signer
}

// ConfigureWebhookClientAuth writes the CA, the API server's client
// certificate, its kubeconfig and the AdmissionConfiguration into dir and
// adds --admission-control-config-file to env's API server. Call it
// before env.Start.
func ConfigureWebhookClientAuth(env *envtest.Environment, dir string) (*WebhookClientAuth, error) {
	a, err := NewWebhookClientAuth(dir)
	if err != nil {
		return nil, err
	}
	a.Configure(env)
	return a, nil
}

// NewWebhookClientAuth writes the files ConfigureWebhookClientAuth would,
// for an API server started some other way.
func NewWebhookClientAuth(dir string) (*WebhookClientAuth, error) {
	ca, caKey, err := newCA("palisade test webhook-client CA")
	if err != nil {
		return nil, err
	}
	a := &WebhookClientAuth{
		CAFile:     filepath.Join(dir, "webhook-client-ca.crt"),
		ClientName: APIServerClientName,
		ConfigFile: filepath.Join(dir, "admission-config.yaml"),
		ca:         ca,
		caKey:      caKey,
	}
	certPEM, keyPEM, err := a.issuePEM(a.ClientName)
	if err != nil {
		return nil, err
	}
	certFile := filepath.Join(dir, "apiserver-webhook-client.crt")
	keyFile := filepath.Join(dir, "apiserver-webhook-client.key")
	kubeconfig := filepath.Join(dir, "apiserver-webhooks.kubeconfig")
	// "*" matches every webhook host; a cluster would key the user by
	// the Service's name (palisade-webhook.palisade-system.svc).
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate: %s
    client-key: %s
`, certFile, keyFile)
	admission := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %[1]s
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %[1]s
`, kubeconfig)
	for path, data := range map[string][]byte{
		a.CAFile:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		certFile:     certPEM,
		keyFile:      keyPEM,
		kubeconfig:   []byte(kc),
		a.ConfigFile: []byte(admission),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return a, nil
}

// Issue returns a client certificate the webhook's CA signed for name:
// what someone holding that CA (or a wrongly scoped one) could present.
func (a *WebhookClientAuth) Issue(name string) (tls.Certificate, error) {
	certPEM, keyPEM, err := a.issuePEM(name)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// UntrustedClientCert returns a client certificate for name signed by a CA
// the webhook does not trust.
func UntrustedClientCert(name string) (tls.Certificate, error) {
	ca, key, err := newCA("untrusted CA")
	if err != nil {
		return tls.Certificate{}, err
	}
	other := &WebhookClientAuth{ca: ca, caKey: key}
	return other.Issue(name)
}

func (a *WebhookClientAuth) issuePEM(name string) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate client key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.ca, &key.PublicKey, a.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign client certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode client key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func newCA(name string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA: %w", err)
	}
	return ca, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// Configure adds --admission-control-config-file to env's API server, so
// that it presents a's client certificate to every webhook. Call it
// before env.Start.
func (a *WebhookClientAuth) Configure(env *envtest.Environment) {
	env.ControlPlane.GetAPIServer().Configure().Set("admission-control-config-file", a.ConfigFile)
}
