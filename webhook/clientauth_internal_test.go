package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// testCA signs certificates for the client check's unit tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert, key}
}

func (ca testCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

func (ca testCA) issue(t testing.TB, cn string, dns []string, usage x509.ExtKeyUsage, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func requestWith(certs ...*x509.Certificate) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/validate-pods", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: certs}
	return r
}

// TestClientAuthVerdicts: the API server's certificate passes; none is
// 401; another CA's, an expired one, one for server auth only and one for
// another name are 403, each with its reason; a DNS SAN counts as a name.
func TestClientAuthVerdicts(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	file := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(file, ca.pem(), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := newClientAuth(file, []string{"kube-apiserver", "apiserver.example"}, nil, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
		reason string
	}{
		{"the API server", requestWith(ca.issue(t, "kube-apiserver", nil, x509.ExtKeyUsageClientAuth, later)), 0, ""},
		{"allowed by DNS SAN", requestWith(ca.issue(t, "x", []string{"apiserver.example"}, x509.ExtKeyUsageClientAuth, later)), 0, ""},
		{"no TLS", httptest.NewRequest(http.MethodPost, "/", nil), 401, RefusedNoCertificate},
		{"no certificate", requestWith(), 401, RefusedNoCertificate},
		{"another CA", requestWith(other.issue(t, "kube-apiserver", nil, x509.ExtKeyUsageClientAuth, later)), 403, RefusedUntrustedCertificate},
		{"expired", requestWith(ca.issue(t, "kube-apiserver", nil, x509.ExtKeyUsageClientAuth, time.Now().Add(-time.Hour))), 403, RefusedUntrustedCertificate},
		{"server auth only", requestWith(ca.issue(t, "kube-apiserver", nil, x509.ExtKeyUsageServerAuth, later)), 403, RefusedUntrustedCertificate},
		{"another name", requestWith(ca.issue(t, "mallory", []string{"mallory.example"}, x509.ExtKeyUsageClientAuth, later)), 403, RefusedNameNotAllowed},
		{"the CA itself", requestWith(ca.cert), 403, RefusedUntrustedCertificate},
	} {
		status, reason, err := a.verify(tc.req)
		if status != tc.status || reason != tc.reason || (status != 0) != (err != nil) {
			t.Errorf("%s: %d %q %v, want %d %q", tc.name, status, reason, err, tc.status, tc.reason)
		}
	}
}

// TestClientCARotation: a rewritten CA file is picked up (the old CA's
// certificates refused, the new one's accepted); a file that stops
// loading keeps the last good CA rather than opening or shutting the door.
func TestClientCARotation(t *testing.T) {
	oldCA, newCA := newTestCA(t), newTestCA(t)
	file := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(file, oldCA.pem(), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := newClientAuth(file, nil, nil, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	a.recheck = 0
	later := time.Now().Add(time.Hour)
	fromOld := requestWith(oldCA.issue(t, "kube-apiserver", nil, x509.ExtKeyUsageClientAuth, later))
	fromNew := requestWith(newCA.issue(t, "kube-apiserver", nil, x509.ExtKeyUsageClientAuth, later))
	check := func(when string, r *http.Request, want int) {
		t.Helper()
		if status, _, err := a.verify(r); status != want {
			t.Errorf("%s: status %d (%v), want %d", when, status, err, want)
		}
	}
	check("before rotation, old CA", fromOld, 0)
	check("before rotation, new CA", fromNew, 403)

	// A different size and a later time, so the change is seen whatever
	// the file system's time resolution.
	if err := os.WriteFile(file, append(newCA.pem(), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(file, time.Now().Add(time.Minute), time.Now().Add(time.Minute)) //nolint:errcheck // size differs anyway
	check("after rotation, old CA", fromOld, 403)
	check("after rotation, new CA", fromNew, 0)

	if err := os.WriteFile(file, []byte("half-written"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("broken file, new CA kept", fromNew, 0)
	check("broken file, old CA still out", fromOld, 403)
}

func TestNewClientAuthRefusesABadFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.crt")
	os.WriteFile(empty, []byte("no pem here"), 0o600) //nolint:errcheck // checked by the error below
	for _, f := range []string{filepath.Join(dir, "missing.crt"), empty} {
		if _, err := newClientAuth(f, nil, nil, logr.Discard()); err == nil {
			t.Errorf("newClientAuth(%s): no error", f)
		}
	}
}

// BenchmarkClientAuthVerify: the per-request cost of the client check, for
// a chain seen first (its signature checked) and again (from the cache),
// beside the floor of building the request it checks.
func BenchmarkClientAuthVerify(b *testing.B) {
	ca := newTestCA(b)
	file := filepath.Join(b.TempDir(), "ca.crt")
	if err := os.WriteFile(file, ca.pem(), 0o600); err != nil {
		b.Fatal(err)
	}
	a, err := newClientAuth(file, []string{"kube-apiserver"}, nil, logr.Discard())
	if err != nil {
		b.Fatal(err)
	}
	leaf := ca.issue(b, "kube-apiserver", nil, x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour))
	b.Run("floor=request", func(b *testing.B) {
		for b.Loop() {
			_ = requestWith(leaf)
		}
	})
	// A new chain each time: the signature checked.
	b.Run("verify-first", func(b *testing.B) {
		for b.Loop() {
			a.mu.Lock()
			a.verified = nil
			a.mu.Unlock()
			if status, _, err := a.verify(requestWith(leaf)); status != 0 {
				b.Fatal(err)
			}
		}
	})
	// The API server's chain again, as on every request of a connection.
	b.Run("verify-again", func(b *testing.B) {
		for b.Loop() {
			if status, _, err := a.verify(requestWith(leaf)); status != 0 {
				b.Fatal(err)
			}
		}
	})
}
