package certs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Manager keeps the self-managed serving certificate. Every replica runs
// one: each may write the Secret and the configurations, and each writes
// its own certificate directory.
//
// One writer wins by optimistic concurrency rather than leader election:
// the Secret is created with Create (AlreadyExists: another replica was
// first) and changed with Update on the resourceVersion that was read
// (Conflict: another replica changed it), and the loser starts its pass
// again from a fresh read, where it finds the winner's certificate valid
// and keeps it. Leader election would add a Lease and its RBAC, and could
// not help a replica's first start: the webhook server cannot start
// without a certificate, and a follower would have to wait on a leader
// that may itself be waiting. Every decision is a pure function of the
// Secret and the clock, so replicas agree on it.
type Manager struct {
	c    client.Client
	o    Options
	p    policy
	host string
	cfgs []configuration

	mu      sync.Mutex // one pass at a time: Run and Rotate may overlap
	written atomic.Bool
	trigger chan struct{}
}

// NewManager checks o and returns a Manager using c. c should read the API
// server directly (client.New; client.NewWithWatch lets Run react to
// changes at once): a cached client would watch every Secret in the
// cluster, which the webhook's RBAC rightly refuses.
func NewManager(c client.Client, o Options) (*Manager, error) {
	if c == nil {
		return nil, errors.New("create certificate manager: client is nil")
	}
	if err := o.complete(); err != nil {
		return nil, err
	}
	p := o.policy()
	return &Manager{
		c: c, o: o, p: p, host: p.dnsNames[0],
		cfgs:    configurations(o.Mutating, o.Validating),
		trigger: make(chan struct{}, 1),
	}, nil
}

// Ensure makes one pass: it creates, repairs or renews the Secret as
// needed, injects its CA bundle into the webhook configurations, and only
// then writes the serving certificate to CertDir.
func (m *Manager) Ensure(ctx context.Context) error {
	_, err := m.ensure(ctx)
	return err
}

func (m *Manager) ensure(ctx context.Context) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, next, err := m.pass(ctx, nil)
	return next, err
}

// Rotate replaces the CA and the serving certificate now, in the order
// that keeps every replica verifiable: the new CA joins the bundle (the
// old one stays, for leaves still being served), the configurations get
// the bundle, PropagationDelay passes, and only then is a leaf from the
// new CA issued and served. To stop trusting the old CA at once (a leaked
// key), delete the Secret instead: it is regenerated with a new CA alone.
func (m *Manager) Rotate(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mat, _, err := m.pass(ctx, func(in inspection) step {
		if in.caErr != nil {
			return stepKeep // regenerated with a new CA anyway
		}
		return stepRotateCA
	})
	if err != nil {
		return fmt.Errorf("rotate CA: %w", err)
	}
	ca := mat.bundle[0].Raw
	select {
	case <-ctx.Done():
		return fmt.Errorf("rotate serving certificate: %w", ctx.Err())
	case <-time.After(m.o.PropagationDelay):
	}
	if _, _, err := m.pass(ctx, func(in inspection) step {
		// Only from the CA this call added: a CA another replica added
		// meanwhile has not been in the bundle long enough.
		if in.caErr == nil && bytes.Equal(in.m.bundle[0].Raw, ca) {
			return stepReissueServing
		}
		return stepKeep
	}); err != nil {
		return fmt.Errorf("rotate serving certificate: %w", err)
	}
	return nil
}

// Ready fails until a serving certificate has been written: a readiness
// check, so that a replica gets traffic only once it can serve.
func (m *Manager) Ready(*http.Request) error {
	if !m.written.Load() {
		return errors.New("no serving certificate written yet")
	}
	return nil
}

// pass reads the Secret, applies force's step (if any) and then what
// decide asks for, writes the Secret if it changed, injects the bundle and
// writes the certificate directory. A lost race with another writer
// restarts it from a fresh read. It returns the settled content and when
// to look again.
func (m *Manager) pass(ctx context.Context, force func(inspection) step) (material, time.Time, error) {
	var (
		next    time.Time
		settled material
	)
	err := retry.OnError(retry.DefaultBackoff, isRace, func() error {
		now := m.o.Now()
		sec := &corev1.Secret{}
		key := types.NamespacedName{Namespace: m.o.Namespace, Name: m.o.SecretName}
		if err := m.c.Get(ctx, key, sec); err != nil {
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("read secret %s: %w", key, err)
			}
			sec = nil
		}
		var in inspection
		if sec == nil {
			in = inspect(false, nil, nil, m.host, now)
		} else {
			in = inspect(true, sec.Data, sec.Annotations, m.host, now)
		}
		settledIn, reasons, n, err := settle(in, now, m.p, m.host, force, func() (int64, error) {
			return highestGeneration(ctx, m.c, m.cfgs)
		})
		if err != nil {
			return fmt.Errorf("settle secret %s: %w", key, err)
		}
		in, next = settledIn, n
		owner, err := m.owner(ctx)
		if err != nil {
			return err
		}
		if sec != nil && sec.Type == corev1.SecretTypeTLS && owner != nil && !ownedBy(sec, owner) {
			// A Secret from before owners were set, or from a Service
			// since replaced: adopt it, or uninstalling leaves it behind.
			reasons = append(reasons, "owner: service "+owner.Name+" (uid "+string(owner.UID)+")")
		}
		if len(reasons) > 0 || (sec != nil && sec.Type != corev1.SecretTypeTLS) {
			m.o.Log.Info("updating webhook certificate secret", "secret", key.String(), "changes", strings.Join(reasons, "; "))
			if err := m.writeSecret(ctx, sec, in.m, owner); err != nil {
				return err
			}
		}
		settled = in.m
		return m.publish(ctx, in.m)
	})
	return settled, next, err
}

// publish puts the bundle into the configurations and, once it is there,
// the serving certificate into the certificate directory.
func (m *Manager) publish(ctx context.Context, mat material) error {
	missing, err := injectBundle(ctx, m.c, m.cfgs, mat.bundlePEM(), mat.generation)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		m.o.Log.V(1).Info("webhook configurations not found; they get the CA bundle once they exist", "missing", missing)
	}
	changed, err := writeCertDir(m.o.CertDir, mat.servingPEM, mat.servingKeyPEM)
	if err != nil {
		return err
	}
	if changed {
		m.o.Log.Info("wrote serving certificate", "dir", m.o.CertDir, "bundleGeneration", mat.generation)
	}
	m.written.Store(true)
	return nil
}

// owner is the webhook Service as the Secret's owner, or nil when the
// Service does not exist. The Service is the chart's, so deleting the
// release deletes it and the garbage collector then deletes the Secret,
// which no chart lists. blockOwnerDeletion is false: nothing waits for the
// Secret, and setting it true would need update on services/finalizers.
func (m *Manager) owner(ctx context.Context) (*metav1.OwnerReference, error) {
	svc := &corev1.Service{}
	key := types.NamespacedName{Namespace: m.o.Namespace, Name: m.o.ServiceName}
	if err := m.c.Get(ctx, key, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read service %s: %w", key, err)
	}
	block := false
	return &metav1.OwnerReference{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID, BlockOwnerDeletion: &block}, nil
}

// ownedBy reports whether s names owner (by UID) among its owners.
func ownedBy(s *corev1.Secret, owner *metav1.OwnerReference) bool {
	for _, r := range s.OwnerReferences {
		if r.UID == owner.UID {
			return true
		}
	}
	return false
}

// withOwner returns refs with owner in place of any reference to a
// Service of the same name (a Service since deleted and recreated).
func withOwner(refs []metav1.OwnerReference, owner *metav1.OwnerReference) []metav1.OwnerReference {
	out := []metav1.OwnerReference{*owner}
	for _, r := range refs {
		if r.UID == owner.UID || (r.Kind == owner.Kind && r.APIVersion == owner.APIVersion && r.Name == owner.Name) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// writeSecret stores mat, on the resourceVersion of old when it exists,
// owned by owner. A Secret is never created without its owner: one created
// while the Service is gone (a replica still running through an uninstall)
// would outlive the release.
func (m *Manager) writeSecret(ctx context.Context, old *corev1.Secret, mat material, owner *metav1.OwnerReference) error {
	if owner == nil && (old == nil || old.Type != corev1.SecretTypeTLS) {
		return fmt.Errorf("create secret %s/%s: webhook service %s/%s not found; the Secret is created only with the Service as its owner", m.o.Namespace, m.o.SecretName, m.o.Namespace, m.o.ServiceName)
	}
	fresh := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   m.o.Namespace,
			Name:        m.o.SecretName,
			Labels:      map[string]string{"app.kubernetes.io/name": "palisade", "app.kubernetes.io/component": "webhook-certificates"},
			Annotations: mat.annotations(),
		},
		Type: corev1.SecretTypeTLS,
		Data: mat.secretData(),
	}
	key := m.o.Namespace + "/" + m.o.SecretName
	if old != nil && old.Type != corev1.SecretTypeTLS {
		// The type is immutable: replace the object, and only the exact
		// one that was read.
		m.o.Log.Info("replacing secret of the wrong type", "secret", key, "type", old.Type)
		uid, rv := old.UID, old.ResourceVersion
		if err := m.c.Delete(ctx, old, &client.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}}); err != nil {
			return fmt.Errorf("delete secret %s of type %s: %w", key, old.Type, err)
		}
		old = nil
	}
	if old == nil {
		fresh.OwnerReferences = []metav1.OwnerReference{*owner}
		if err := m.c.Create(ctx, fresh); err != nil {
			return fmt.Errorf("create secret %s: %w", key, err)
		}
		return nil
	}
	upd := old.DeepCopy()
	upd.Data = fresh.Data
	if upd.Annotations == nil {
		upd.Annotations = map[string]string{}
	}
	for k, v := range fresh.Annotations {
		upd.Annotations[k] = v
	}
	if owner != nil {
		upd.OwnerReferences = withOwner(upd.OwnerReferences, owner)
	}
	if err := m.c.Update(ctx, upd); err != nil {
		return fmt.Errorf("update secret %s: %w", key, err)
	}
	return nil
}

// isRace reports a lost race with another writer: worth a fresh read.
func isRace(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) || errors.Is(err, errStaleBundle)
}
