package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func mustCA(t *testing.T, now time.Time, validity time.Duration) *keyPair {
	t.Helper()
	ca, err := newCA("test-ca", now, validity)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustServing(t *testing.T, ca *keyPair, names []string, now time.Time, validity time.Duration) *keyPair {
	t.Helper()
	kp, err := newServing(ca, names, now, validity)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func TestGeneratedCertificates(t *testing.T) {
	ca := mustCA(t, t0, 5*365*24*time.Hour)
	names := DNSNames("palisade-webhook", "palisade-system")
	leaf := mustServing(t, ca, names, t0, 365*24*time.Hour)

	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA constraints: IsCA=%v MaxPathLenZero=%v usage=%v", ca.Cert.IsCA, ca.Cert.MaxPathLenZero, ca.Cert.KeyUsage)
	}
	if leaf.Cert.IsCA {
		t.Error("serving certificate is a CA")
	}
	if pub, ok := leaf.Cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("serving key is %T, want ECDSA P-256", leaf.Cert.PublicKey)
	}
	if got := leaf.Cert.ExtKeyUsage; len(got) != 1 || got[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("ext key usage %v, want server auth only", got)
	}
	if !leaf.Cert.NotBefore.Equal(t0.Add(-backdate)) || !leaf.Cert.NotAfter.Equal(t0.Add(365*24*time.Hour)) {
		t.Errorf("validity %s..%s", leaf.Cert.NotBefore, leaf.Cert.NotAfter)
	}
	want := []string{"palisade-webhook.palisade-system.svc", "palisade-webhook.palisade-system.svc.cluster.local", "palisade-webhook.palisade-system", "palisade-webhook"}
	if strings.Join(leaf.Cert.DNSNames, ",") != strings.Join(want, ",") {
		t.Errorf("SANs %v, want %v", leaf.Cert.DNSNames, want)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, n := range want {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: n, Roots: pool, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify for %s: %v", n, err)
		}
	}
	// The PEM forms round-trip to the same key and certificate.
	if _, err := checkServing(leaf.CertPEM, leaf.KeyPEM, []*x509.Certificate{ca.Cert}, want[0], t0); err != nil {
		t.Errorf("check own output: %v", err)
	}
	key, err := parseECKey(ca.KeyPEM)
	if err != nil || !keyMatches(ca.Cert, key) {
		t.Errorf("CA key round trip: %v", err)
	}
}

func TestServingNeverOutlivesItsCA(t *testing.T) {
	ca := mustCA(t, t0, 30*24*time.Hour)
	leaf := mustServing(t, ca, []string{"a.b.svc"}, t0, 365*24*time.Hour)
	if !leaf.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("leaf ends %s, CA ends %s", leaf.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestCheckServing(t *testing.T) {
	host := "palisade-webhook.palisade-system.svc"
	ca := mustCA(t, t0, 5*365*24*time.Hour)
	other := mustCA(t, t0, 5*365*24*time.Hour)
	good := mustServing(t, ca, DNSNames("palisade-webhook", "palisade-system"), t0, 365*24*time.Hour)
	second := mustServing(t, ca, DNSNames("palisade-webhook", "palisade-system"), t0, 365*24*time.Hour)
	wrongHost := mustServing(t, ca, DNSNames("other", "palisade-system"), t0, 365*24*time.Hour)
	wildcard := mustServing(t, ca, []string{"*.palisade-system.svc"}, t0, 365*24*time.Hour)
	fromOther := mustServing(t, other, DNSNames("palisade-webhook", "palisade-system"), t0, 365*24*time.Hour)
	rsaCert, rsaKey := rsaSelfSigned(t, host, t0)
	roots := []*x509.Certificate{ca.Cert}

	for _, tc := range []struct {
		name      string
		cert, key []byte
		roots     []*x509.Certificate
		now       time.Time
		wantErr   string
	}{
		{name: "valid", cert: good.CertPEM, key: good.KeyPEM, roots: roots, now: t0},
		{name: "valid without roots", cert: good.CertPEM, key: good.KeyPEM, now: t0},
		{name: "wildcard covers the service", cert: wildcard.CertPEM, key: wildcard.KeyPEM, roots: roots, now: t0},
		{name: "RSA key (bring your own)", cert: rsaCert, key: rsaKey, now: t0},
		{name: "no certificate", key: good.KeyPEM, now: t0, wantErr: "tls.crt is missing"},
		{name: "no key", cert: good.CertPEM, now: t0, wantErr: "tls.key is missing"},
		{name: "garbage certificate", cert: []byte("hello"), key: good.KeyPEM, now: t0, wantErr: "tls.crt: parse certificates: no PEM certificate"},
		{name: "garbage key", cert: good.CertPEM, key: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), now: t0, wantErr: "tls.key: parse private key"},
		{name: "key of another certificate", cert: good.CertPEM, key: second.KeyPEM, roots: roots, now: t0, wantErr: "tls.key does not match"},
		{name: "expired", cert: good.CertPEM, key: good.KeyPEM, roots: roots, now: t0.Add(366 * 24 * time.Hour), wantErr: "expired at 2031-01-01T00:00:00Z"},
		{name: "not yet valid", cert: good.CertPEM, key: good.KeyPEM, roots: roots, now: t0.Add(-2 * time.Hour), wantErr: "not valid before"},
		{name: "does not cover the service", cert: wrongHost.CertPEM, key: wrongHost.KeyPEM, roots: roots, now: t0, wantErr: "does not cover palisade-webhook.palisade-system.svc (it names other.palisade-system.svc"},
		{name: "signed by another CA", cert: fromOther.CertPEM, key: fromOther.KeyPEM, roots: roots, now: t0, wantErr: "does not verify against ca.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkServing(tc.cert, tc.key, tc.roots, host, tc.now)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseCertificatesRejectsJunk(t *testing.T) {
	ca := mustCA(t, t0, time.Hour)
	junk := append(append([]byte(nil), ca.CertPEM...), ca.KeyPEM...)
	if _, err := parseCertificates(junk); err == nil || !strings.Contains(err.Error(), `unexpected PEM block "PRIVATE KEY"`) {
		t.Errorf("error %v", err)
	}
	if got := parseCertificatesLenient(junk); len(got) != 1 {
		t.Errorf("lenient parse kept %d certificates, want 1", len(got))
	}
}

func rsaSelfSigned(t *testing.T, host string, now time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}
