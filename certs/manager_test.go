package certs_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/certs"
)

func newManager(t *testing.T, f *fixture, o certs.Options) *certs.Manager {
	t.Helper()
	m, err := certs.NewManager(f.sa, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// assertPublished checks the whole chain a replica depends on: the Secret
// is a kubernetes.io/tls Secret, every webhook of both configurations
// carries its ca.crt, and dir holds its serving certificate and key.
func assertPublished(t *testing.T, f *fixture, dir string, now time.Time) *corev1.Secret {
	t.Helper()
	s := f.secret(t)
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("secret type %s, want %s", s.Type, corev1.SecretTypeTLS)
	}
	for _, k := range []string{certs.KeyCert, certs.KeyKey, certs.KeyCA, certs.KeyCAKey} {
		if len(s.Data[k]) == 0 {
			t.Errorf("secret lacks %s", k)
		}
	}
	bundles, _ := f.bundles(t)
	if len(bundles) != 6 {
		t.Fatalf("%d webhooks, want 6", len(bundles))
	}
	for i, b := range bundles {
		if !bytes.Equal(b, s.Data[certs.KeyCA]) {
			t.Errorf("webhook %d caBundle differs from the secret's ca.crt", i)
		}
	}
	for file, key := range map[string]string{certs.CertFile: certs.KeyCert, certs.KeyFile: certs.KeyKey} {
		got, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, s.Data[key]) {
			t.Errorf("%s in the cert dir differs from the secret's %s", file, key)
		}
	}
	if _, err := certs.CheckProvidedSecret(s, serviceName, now); err != nil {
		t.Errorf("published secret does not pass the check: %v", err)
	}
	return s
}

func TestEnsureCreatesSecretAndInjectsBundle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	m := newManager(t, f, f.options(dir))
	if err := m.Ready(nil); err == nil {
		t.Error("ready before any certificate was written")
	}
	if err := m.Ensure(ctx); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	if err := m.Ready(nil); err != nil {
		t.Errorf("not ready after ensure: %v", err)
	}
	s := assertPublished(t, f, dir, time.Now())
	leaf := parseLeaf(t, s.Data[certs.KeyCert])
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("serving key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < 364*24*time.Hour || got > 366*24*time.Hour {
		t.Errorf("serving certificate lives %s, want about a year", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, certs.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v (%v), want 0600", fi.Mode(), err)
	}

	// A second pass changes nothing: not the Secret, not the
	// configurations, not the files.
	_, versions := f.bundles(t)
	stat, _ := os.Stat(filepath.Join(dir, certs.CertFile))
	if err := m.Ensure(ctx); err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	if again := f.secret(t); again.ResourceVersion != s.ResourceVersion {
		t.Errorf("second ensure rewrote the secret")
	}
	if _, v := f.bundles(t); v[0] != versions[0] || v[1] != versions[1] {
		t.Errorf("second ensure rewrote the configurations: %v -> %v", versions, v)
	}
	if stat2, _ := os.Stat(filepath.Join(dir, certs.CertFile)); !stat2.ModTime().Equal(stat.ModTime()) {
		t.Errorf("second ensure rewrote the cert dir")
	}
}

func TestExpiredCertificatesAreRenewed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	if err := newManager(t, f, f.options(dir)).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first := f.secret(t)

	for _, tc := range []struct {
		name       string
		after      time.Duration
		wantNewCA  bool
		wantReason string
	}{
		{name: "serving certificate expired", after: 13 * 30 * 24 * time.Hour, wantNewCA: false, wantReason: "expired at"},
		{name: "CA expired", after: 6 * 365 * 24 * time.Hour, wantNewCA: true, wantReason: "expired at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.secret(t)
			logs := &logSink{}
			o := f.options(dir)
			later := time.Now().Add(tc.after)
			o.Now = func() time.Time { return later }
			o.Log = logs.logger()
			if err := newManager(t, f, o).Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			after := f.secret(t)
			assertPublished(t, f, dir, later)
			if bytes.Equal(after.Data[certs.KeyCert], before.Data[certs.KeyCert]) {
				t.Fatal("serving certificate not renewed")
			}
			if _, err := certs.CheckProvidedSecret(after, serviceName, later); err != nil {
				t.Errorf("renewed certificate invalid at the new time: %v", err)
			}
			newCA := !bytes.Equal(firstCert(t, after.Data[certs.KeyCA]).Raw, firstCert(t, first.Data[certs.KeyCA]).Raw)
			if newCA != tc.wantNewCA {
				t.Errorf("new CA %v, want %v", newCA, tc.wantNewCA)
			}
			if !logs.contains("updating webhook certificate secret") || !logs.contains(tc.wantReason) {
				t.Errorf("no log line with the reason %q:\n%s", tc.wantReason, logs)
			}
		})
	}
}

func TestBrokenSecretIsReplaced(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	logs := &logSink{}
	o := f.options(dir)
	o.Log = logs.logger()
	m := newManager(t, f, o)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	good := f.secret(t)

	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	strangerKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	for _, tc := range []struct {
		name       string
		breakIt    func(*corev1.Secret)
		wantReason string
		wantNewCA  bool
	}{
		{name: "serving key does not match", breakIt: func(s *corev1.Secret) { s.Data[certs.KeyKey] = strangerKey }, wantReason: "tls.key does not match"},
		{name: "serving cert from another CA", breakIt: func(s *corev1.Secret) {
			s.Data[certs.KeyCert] = selfSigned(t, otherKey, certs.DNSNames(serviceName, f.ns)[0])
			s.Data[certs.KeyKey] = strangerKey
		}, wantReason: "does not verify against ca.crt"},
		{name: "CA key does not match", breakIt: func(s *corev1.Secret) { s.Data[certs.KeyCAKey] = strangerKey }, wantReason: "ca.key does not match", wantNewCA: true},
		{name: "ca.crt is not PEM", breakIt: func(s *corev1.Secret) { s.Data[certs.KeyCA] = []byte("not pem") }, wantReason: "ca.crt", wantNewCA: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := f.secret(t)
			caBefore := firstCert(t, s.Data[certs.KeyCA]).Raw
			tc.breakIt(s)
			if err := admin.Update(ctx, s); err != nil {
				t.Fatal(err)
			}
			if err := m.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			fixed := assertPublished(t, f, dir, time.Now())
			if !logs.contains(tc.wantReason) {
				t.Errorf("no log line naming %q:\n%s", tc.wantReason, logs)
			}
			if newCA := !bytes.Equal(firstCert(t, fixed.Data[certs.KeyCA]).Raw, caBefore); newCA != tc.wantNewCA {
				t.Errorf("new CA %v, want %v", newCA, tc.wantNewCA)
			}
		})
	}

	t.Run("secret deleted", func(t *testing.T) {
		if err := admin.Delete(ctx, f.secret(t)); err != nil {
			t.Fatal(err)
		}
		if err := m.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		s := assertPublished(t, f, dir, time.Now())
		if bytes.Equal(s.Data[certs.KeyCA], good.Data[certs.KeyCA]) {
			t.Error("deleted secret came back with the same CA")
		}
	})

	t.Run("secret of the wrong type", func(t *testing.T) {
		if err := admin.Delete(ctx, f.secret(t)); err != nil {
			t.Fatal(err)
		}
		opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: f.ns}, Data: map[string][]byte{"x": []byte("y")}}
		if err := admin.Create(ctx, opaque); err != nil {
			t.Fatal(err)
		}
		if err := m.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		assertPublished(t, f, dir, time.Now())
	})
}

// TestReplicas starts several Managers at once on an empty cluster, as a
// Deployment's replicas do: one Secret results, and every replica serves
// its certificate with the bundle in the configurations.
func TestReplicas(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const replicas = 4
	dirs := make([]string, replicas)
	managers := make([]*certs.Manager, replicas)
	for i := range managers {
		dirs[i] = t.TempDir()
		managers[i] = newManager(t, f, f.options(dirs[i]))
	}
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	start := make(chan struct{})
	for i, m := range managers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = m.Ensure(ctx)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	s := f.secret(t)
	for _, d := range dirs {
		assertPublished(t, f, d, time.Now())
	}
	if s.Annotations[certs.AnnotationBundleGeneration] != "1" {
		t.Errorf("bundle generation %q after a racing start, want 1 (one writer)", s.Annotations[certs.AnnotationBundleGeneration])
	}

	// Running replicas follow a rotation made by one of them through
	// their watches, well before their resync.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var running sync.WaitGroup
	for i := range managers {
		o := f.options(dirs[i])
		o.ResyncInterval = time.Hour
		o.PropagationDelay = 200 * time.Millisecond
		managers[i] = newManager(t, f, o)
		running.Add(1)
		go func() {
			defer running.Done()
			managers[i].Run(runCtx) //nolint:errcheck // returns nil on cancel
		}()
	}
	defer func() { stop(); running.Wait() }()
	if err := managers[0].Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	rotated := f.secret(t)
	if bytes.Equal(rotated.Data[certs.KeyCert], s.Data[certs.KeyCert]) {
		t.Fatal("rotate did not change the serving certificate")
	}
	for _, d := range dirs {
		waitFor(t, 20*time.Second, "replica's cert dir to follow the rotation", func() bool {
			got, _ := os.ReadFile(filepath.Join(d, certs.CertFile))
			return bytes.Equal(got, rotated.Data[certs.KeyCert])
		})
	}
	assertPublished(t, f, dirs[replicas-1], time.Now())
}

func TestNewManagerRejectsBadOptions(t *testing.T) {
	if _, err := certs.NewManager(nil, certs.Options{}); err == nil {
		t.Error("nil client accepted")
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func parseLeaf(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	return firstCert(t, data)
}

func firstCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// selfSigned makes a certificate for the service that no bundle trusts.
func selfSigned(t *testing.T, key *ecdsa.PrivateKey, host string) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
