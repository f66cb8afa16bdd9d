package certs

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Run makes a pass at once and again whenever the Secret or a webhook
// configuration changes (when the client can watch), when a certificate
// is due, and every ResyncInterval, until ctx ends. A failed pass is
// retried with backoff and never ends Run: the certificate already on
// disk stays valid for months.
func (m *Manager) Run(ctx context.Context) error {
	if w, ok := m.c.(client.WithWatch); ok {
		go watchLoop(ctx, w, m.o.Log, m.trigger, &corev1.SecretList{},
			client.InNamespace(m.o.Namespace), client.MatchingFields{"metadata.name": m.o.SecretName})
		for _, cfg := range m.cfgs {
			var list client.ObjectList = &admissionregistrationv1.ValidatingWebhookConfigurationList{}
			if cfg.kind == "MutatingWebhookConfiguration" {
				list = &admissionregistrationv1.MutatingWebhookConfigurationList{}
			}
			go watchLoop(ctx, w, m.o.Log, m.trigger, list, client.MatchingFields{"metadata.name": cfg.name})
		}
	}
	return runLoop(ctx, m.o.Log, m.o.ResyncInterval, m.o.Now, m.trigger, m.ensure)
}

// Start runs Run, making the Manager a controller-runtime Runnable
// (mgr.Add(m)).
func (m *Manager) Start(ctx context.Context) error { return m.Run(ctx) }

// NeedLeaderElection is false: every replica must write its own
// certificate directory.
func (m *Manager) NeedLeaderElection() bool { return false }

// runLoop calls pass until ctx ends: at once, on trigger, at the time the
// pass asks for, and every resync.
func runLoop(ctx context.Context, log logr.Logger, resync time.Duration, now func() time.Time, trigger <-chan struct{}, pass func(context.Context) (time.Time, error)) error {
	const firstBackoff = time.Second
	backoff := firstBackoff
	for {
		next, err := pass(ctx)
		wait := resync
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error(err, "webhook certificate pass failed", "retryIn", backoff)
			wait = min(backoff, resync)
			backoff *= 2
		} else {
			backoff = firstBackoff
			if !next.IsZero() {
				// The floor keeps a deadline that is already due from
				// turning this into a busy loop.
				wait = min(wait, max(next.Sub(now()), 100*time.Millisecond))
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		case <-trigger:
			timer.Stop()
		}
	}
}

// watchLoop signals trigger on every event of the objects list selects,
// re-opening the watch when the server ends it.
func watchLoop(ctx context.Context, c client.WithWatch, log logr.Logger, trigger chan<- struct{}, list client.ObjectList, opts ...client.ListOption) {
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, list, opts...)
		if err != nil {
			log.V(1).Info("watch failed; relying on periodic checks until it works", "list", fmt.Sprintf("%T", list), "error", err.Error())
			sleep(ctx, 5*time.Second)
			continue
		}
		func() {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-w.ResultChan():
					if !ok {
						return
					}
					select {
					case trigger <- struct{}{}:
					default:
					}
				}
			}
		}()
		sleep(ctx, time.Second) // a server that ends watches at once must not make this spin
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
