package certs_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/certs"
)

// assertOwnedBy checks that s has exactly one owner, svc, as the garbage
// collector needs it (envtest runs no garbage collector, so the reference
// itself is what can be checked): uid, name, kind, apiVersion, and
// blockOwnerDeletion false.
func assertOwnedBy(t *testing.T, s *corev1.Secret, svc *corev1.Service) {
	t.Helper()
	if len(s.OwnerReferences) != 1 {
		t.Fatalf("secret owners %+v, want exactly the Service %s", s.OwnerReferences, svc.Name)
	}
	r := s.OwnerReferences[0]
	if r.APIVersion != "v1" || r.Kind != "Service" || r.Name != svc.Name || r.UID != svc.UID {
		t.Errorf("owner %s %s %s uid %s, want v1 Service %s uid %s", r.APIVersion, r.Kind, r.Name, r.UID, svc.Name, svc.UID)
	}
	if r.BlockOwnerDeletion == nil || *r.BlockOwnerDeletion {
		t.Errorf("blockOwnerDeletion %v, want false", r.BlockOwnerDeletion)
	}
	if r.Controller != nil && *r.Controller {
		t.Errorf("owner is marked controller")
	}
}

func (f *fixture) service(t *testing.T) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{}
	if err := admin.Get(context.Background(), keyOf(f.ns, serviceName), svc); err != nil {
		t.Fatalf("get service: %v", err)
	}
	return svc
}

// TestSecretOwnedByService: the self-managed Secret belongs to the webhook
// Service, so that `helm uninstall` (which deletes the Service) leaves no
// Secret behind; a Secret made before owners were set is adopted, a
// replaced Service takes over, and no Secret is created while the Service
// is missing (a replica still running through an uninstall).
func TestSecretOwnedByService(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := newManager(t, f, f.options(t.TempDir()))
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	created := f.secret(t)
	assertOwnedBy(t, created, f.service(t))

	t.Run("a Secret without owner is adopted, content kept", func(t *testing.T) {
		s := f.secret(t)
		s.OwnerReferences = nil
		if err := admin.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := m.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		adopted := f.secret(t)
		assertOwnedBy(t, adopted, f.service(t))
		if !bytes.Equal(adopted.Data[certs.KeyCert], created.Data[certs.KeyCert]) || !bytes.Equal(adopted.Data[certs.KeyCA], created.Data[certs.KeyCA]) {
			t.Error("adoption changed the certificates")
		}
	})

	t.Run("a replaced Service becomes the owner", func(t *testing.T) {
		old := f.service(t)
		if err := admin.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		fresh := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: serviceName, Namespace: f.ns},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https-webhook", Port: 443}}},
		}
		if err := admin.Create(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		if err := m.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		assertOwnedBy(t, f.secret(t), f.service(t))
	})

	t.Run("no Secret is created without its Service", func(t *testing.T) {
		if err := admin.Delete(ctx, f.service(t)); err != nil {
			t.Fatal(err)
		}
		if err := admin.Delete(ctx, f.secret(t)); err != nil {
			t.Fatal(err)
		}
		err := m.Ensure(ctx)
		if err == nil || !strings.Contains(err.Error(), "webhook service "+f.ns+"/"+serviceName+" not found") {
			t.Errorf("ensure without the Service: err = %v, want it to name the missing Service", err)
		}
		if err := admin.Get(ctx, keyOf(f.ns, secretName), &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("secret exists without its owner (get: %v)", err)
		}
	})
}
