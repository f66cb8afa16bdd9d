package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CheckProvidedSecret reports what makes a user's Secret unfit to serve the
// webhook at now, naming the Secret and the problem: tls.crt and tls.key
// present, the key matching the certificate, the certificate within its
// validity and covering <service>.<namespace>.svc (the name the API server
// dials), and, when the Secret has ca.crt, chaining to it. It returns the
// serving certificate. The CA bundle of the webhook configurations is the
// user's to set in this mode.
func CheckProvidedSecret(s *corev1.Secret, serviceName string, now time.Time) (*x509.Certificate, error) {
	if s == nil {
		return nil, errors.New("check provided secret: secret is nil")
	}
	name := s.Namespace + "/" + s.Name
	var roots []*x509.Certificate
	if ca := s.Data[KeyCA]; len(ca) > 0 {
		var err error
		if roots, err = parseCertificates(ca); err != nil {
			return nil, fmt.Errorf("secret %s: %s: %w", name, KeyCA, err)
		}
	}
	leaf, err := checkServing(s.Data[KeyCert], s.Data[KeyKey], roots, DNSNames(serviceName, s.Namespace)[0], now)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return leaf, nil
}

// ProvidedOptions configures the bring-your-own-Secret mode.
type ProvidedOptions struct {
	// Namespace, SecretName: the user's Secret. ServiceName: the webhook
	// Service in Namespace. CertDir receives tls.crt and tls.key. Required.
	Namespace, SecretName, ServiceName, CertDir string
	// Now defaults to time.Now.
	Now func() time.Time
	// ResyncInterval defaults to DefaultResyncInterval.
	ResyncInterval time.Duration
	// Log defaults to a discarding logger.
	Log logr.Logger
}

// Provided serves a user's Secret: it checks it and writes it to the
// certificate directory, and, run, follows the user's renewals. A Secret
// that fails the check is never written; what was written before stays.
type Provided struct {
	c       client.Reader
	o       ProvidedOptions
	written atomic.Bool
	trigger chan struct{}
}

// NewProvided checks o. c should read the API server directly (see
// NewManager).
func NewProvided(c client.Reader, o ProvidedOptions) (*Provided, error) {
	if c == nil {
		return nil, errors.New("create provided certificate: client is nil")
	}
	if o.Namespace == "" || o.SecretName == "" || o.ServiceName == "" || o.CertDir == "" {
		return nil, errors.New("check provided certificate options: Namespace, SecretName, ServiceName and CertDir are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = DefaultResyncInterval
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	return &Provided{c: c, o: o, trigger: make(chan struct{}, 1)}, nil
}

// Ensure reads and checks the Secret and writes it to CertDir.
func (p *Provided) Ensure(ctx context.Context) error {
	_, err := p.ensure(ctx)
	return err
}

func (p *Provided) ensure(ctx context.Context) (time.Time, error) {
	key := types.NamespacedName{Namespace: p.o.Namespace, Name: p.o.SecretName}
	s := &corev1.Secret{}
	if err := p.c.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return time.Time{}, fmt.Errorf("secret %s: not found: create it with tls.crt and tls.key for %s", key, DNSNames(p.o.ServiceName, p.o.Namespace)[0])
		}
		return time.Time{}, fmt.Errorf("read secret %s: %w", key, err)
	}
	leaf, err := CheckProvidedSecret(s, p.o.ServiceName, p.o.Now())
	if err != nil {
		return time.Time{}, err
	}
	changed, err := writeCertDir(p.o.CertDir, s.Data[KeyCert], s.Data[KeyKey])
	if err != nil {
		return time.Time{}, err
	}
	if changed {
		p.o.Log.Info("wrote provided serving certificate", "secret", key.String(), "dir", p.o.CertDir, "notAfter", stamp(leaf.NotAfter))
	}
	p.written.Store(true)
	// Look again when it expires, to say so.
	return leaf.NotAfter.Add(time.Second), nil
}

// Run checks the Secret at once, on every change to it (when the client
// can watch) and every ResyncInterval, until ctx ends.
func (p *Provided) Run(ctx context.Context) error {
	if w, ok := p.c.(client.WithWatch); ok {
		go watchLoop(ctx, w, p.o.Log, p.trigger, &corev1.SecretList{},
			client.InNamespace(p.o.Namespace), client.MatchingFields{"metadata.name": p.o.SecretName})
	}
	return runLoop(ctx, p.o.Log, p.o.ResyncInterval, p.o.Now, p.trigger, p.ensure)
}

// Start runs Run (a controller-runtime Runnable).
func (p *Provided) Start(ctx context.Context) error { return p.Run(ctx) }

// NeedLeaderElection is false: every replica writes its own directory.
func (p *Provided) NeedLeaderElection() bool { return false }

// Ready fails until a certificate has been written.
func (p *Provided) Ready(*http.Request) error {
	if !p.written.Load() {
		return errors.New("no serving certificate written yet")
	}
	return nil
}
