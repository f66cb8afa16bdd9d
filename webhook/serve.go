package webhook

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/palisade-dev/palisade/rules"
)

// ServeOptions configures a whole webhook process.
type ServeOptions struct {
	// Options for the handlers; Client, APIReader, Events and Metrics are
	// filled in from the manager when unset.
	Options
	// Host and Port the TLS admission server listens on. Port defaults to 9443.
	Host string
	Port int
	// CertDir holds tls.crt and tls.key; they are reloaded when they change.
	// Default: controller-runtime's (<tmp>/k8s-webhook-server/serving-certs).
	CertDir string
	// MetricsAddr serves /metrics ("0" disables). Default ":8080".
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz ("0" disables). Default ":8081".
	HealthAddr string
	// Runnables run in the same manager as the server, e.g. the
	// certificate manager that keeps CertDir current. Each must return
	// when its context ends; an error stops the whole process.
	Runnables []manager.Runnable
	// ReadyChecks join the server's own check on /readyz (by name), e.g.
	// "certificates": the replica gets traffic only once all pass.
	ReadyChecks map[string]healthz.Checker
}

// Serve runs the admission server and the baseline reconciler until ctx
// ends.
func Serve(ctx context.Context, cfg *rest.Config, o ServeOptions) error {
	if o.MetricsAddr == "" {
		o.MetricsAddr = ":8080"
	}
	if o.HealthAddr == "" {
		o.HealthAddr = ":8081"
	}
	managed := labels.SelectorFromSet(labels.Set{rules.LabelManagedBy: rules.ManagedByValue})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Logger: o.Log,
		// Only Palisade's own policies are cached: a cluster may hold
		// tens of thousands of user policies the webhook never reads.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&networkingv1.NetworkPolicy{}: {Label: managed},
		}},
		WebhookServer:          ctrlwebhook.NewServer(ctrlwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir}),
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.HealthAddr,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if o.Client == nil {
		o.Client = mgr.GetClient()
		o.APIReader = mgr.GetAPIReader()
	}
	if o.Events == nil {
		o.Events = mgr.GetEventRecorder("palisade-webhook")
	}
	if o.Metrics == nil {
		m, err := NewMetrics(ctrlmetrics.Registry)
		if err != nil {
			return err
		}
		o.Metrics = m
	}
	if err := Register(mgr, o.Options); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	// Ready only once the TLS server answers: the Service must not send
	// the API server to a replica still loading its certificate.
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	for name, check := range o.ReadyChecks {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			return fmt.Errorf("add ready check %s: %w", name, err)
		}
	}
	for _, r := range o.Runnables {
		if err := mgr.Add(r); err != nil {
			return fmt.Errorf("add runnable: %w", err)
		}
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run webhook: %w", err)
	}
	return nil
}
