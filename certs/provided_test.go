package certs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/certs"
)

// userSecret makes a Secret as a user would bring it, from the
// self-managed mode's own output in a scratch namespace.
func userSecret(t *testing.T, f *fixture, service string) *corev1.Secret {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	o := f.options(dir)
	o.SecretName, o.ServiceName = "scratch-"+service, service
	o.Mutating, o.Validating = "", ""
	// The Manager creates its Secret only for an existing Service (the owner).
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: service, Namespace: f.ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 443}}},
	}
	if err := admin.Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	m, err := certs.NewManager(admin, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{}
	if err := admin.Get(ctx, keyOf(f.ns, o.SecretName), s); err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "user-tls", Namespace: f.ns},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{certs.KeyCert: s.Data[certs.KeyCert], certs.KeyKey: s.Data[certs.KeyKey], certs.KeyCA: s.Data[certs.KeyCA]},
	}
}

func TestProvidedSecret(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	p, err := certs.NewProvided(f.sa, certs.ProvidedOptions{Namespace: f.ns, SecretName: "user-tls", ServiceName: serviceName, CertDir: dir})
	if err != nil {
		t.Fatal(err)
	}

	err = p.Ensure(ctx)
	if err == nil || !strings.Contains(err.Error(), "secret "+f.ns+"/user-tls: not found") {
		t.Fatalf("missing secret: error %v", err)
	}

	good := userSecret(t, f, serviceName)
	if err := admin.Create(ctx, good); err != nil {
		t.Fatal(err)
	}
	if err := p.Ensure(ctx); err != nil {
		t.Fatalf("valid secret refused: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, certs.CertFile)); !bytes.Equal(got, good.Data[certs.KeyCert]) {
		t.Error("cert dir does not hold the user's certificate")
	}
	if err := p.Ready(nil); err != nil {
		t.Errorf("not ready: %v", err)
	}

	other := userSecret(t, f, "someone-else")
	for _, tc := range []struct {
		name    string
		data    map[string][]byte
		wantErr string
	}{
		{name: "no key", data: map[string][]byte{certs.KeyCert: good.Data[certs.KeyCert], "tls.key": nil}, wantErr: "tls.key is missing or empty"},
		{name: "key of another certificate", data: map[string][]byte{certs.KeyCert: good.Data[certs.KeyCert], certs.KeyKey: other.Data[certs.KeyKey]}, wantErr: "tls.key does not match the certificate in tls.crt"},
		{name: "wrong service", data: map[string][]byte{certs.KeyCert: other.Data[certs.KeyCert], certs.KeyKey: other.Data[certs.KeyKey]}, wantErr: "does not cover " + serviceName + "." + f.ns + ".svc (it names someone-else." + f.ns + ".svc"},
		{name: "ca.crt of another CA", data: map[string][]byte{certs.KeyCert: good.Data[certs.KeyCert], certs.KeyKey: good.Data[certs.KeyKey], certs.KeyCA: other.Data[certs.KeyCA]}, wantErr: "does not verify against ca.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &corev1.Secret{}
			if err := admin.Get(ctx, keyOf(f.ns, "user-tls"), s); err != nil {
				t.Fatal(err)
			}
			s.Data = tc.data
			if err := admin.Update(ctx, s); err != nil {
				t.Fatal(err)
			}
			err := p.Ensure(ctx)
			if err == nil || !strings.Contains(err.Error(), "secret "+f.ns+"/user-tls: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one naming the secret and %q", err, tc.wantErr)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, certs.CertFile)); !bytes.Equal(got, good.Data[certs.KeyCert]) {
				t.Error("a refused secret replaced the certificate on disk")
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		s := good.DeepCopy()
		_, err := certs.CheckProvidedSecret(s, serviceName, time.Now().Add(2*365*24*time.Hour))
		if err == nil || !strings.Contains(err.Error(), "secret "+f.ns+"/user-tls: certificate in tls.crt expired at") {
			t.Fatalf("error %v", err)
		}
	})
}
