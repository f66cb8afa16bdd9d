package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

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

	"github.com/palisade-dev/palisade/internal/metricsserve"
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
	// ClientCAFile is the PEM CA that signed the API server's webhook
	// client certificate (kube-apiserver --admission-control-config-file).
	// Set, every request must present a certificate it signed for one of
	// ClientNames, or gets 401 (none) or 403 (any other), is counted in
	// palisade_webhook_refused_requests_total and reaches no handler:
	// nothing is judged, recorded or turned into an Event. Reloaded when
	// the file changes. Default: callers are not authenticated (anyone who
	// reaches the port can have a review judged and recorded).
	ClientCAFile string
	// ClientNames are the common names or DNS SANs accepted from
	// ClientCAFile. Default: any certificate the CA signed for client
	// authentication (right only for a CA dedicated to the API server).
	ClientNames []string
	// MaxConcurrentRequests bounds the admission requests served at once;
	// beyond it a request gets 429 and the API server applies the
	// webhook's failurePolicy. Default DefaultMaxConcurrentRequests.
	MaxConcurrentRequests int
	// ReadTimeout bounds reading one request, headers and body.
	// Default DefaultReadTimeout.
	ReadTimeout time.Duration
	// MetricsAddr serves /metrics ("0" disables). A loopback address
	// serves plain HTTP; any other serves TLS, each scrape authenticated
	// and authorized by the API server (get on the non-resource URL
	// /metrics). Default ":8080".
	MetricsAddr string
	// MetricsCertDir holds tls.crt and tls.key for the metrics endpoint.
	// Default: a self-signed certificate.
	MetricsCertDir string
	// MetricsGatherer is what MetricsAddr serves. Default:
	// controller-runtime's registry, where Metrics are registered when
	// unset.
	MetricsGatherer prometheus.Gatherer
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
	if o.MaxConcurrentRequests <= 0 {
		o.MaxConcurrentRequests = DefaultMaxConcurrentRequests
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	if o.Metrics == nil {
		m, err := NewMetrics(ctrlmetrics.Registry)
		if err != nil {
			return err
		}
		o.Metrics = m
	}
	server, err := newAdmissionServer(o)
	if err != nil {
		return err
	}
	var metricsServer *metricsserve.Server
	if o.MetricsAddr != "0" {
		gatherer := o.MetricsGatherer
		if gatherer == nil {
			gatherer = ctrlmetrics.Registry
		}
		metricsServer, err = metricsserve.Listen(metricsserve.Options{
			Addr: o.MetricsAddr, Gatherer: gatherer, Config: cfg, CertDir: o.MetricsCertDir, Log: o.Log.WithName("metrics"),
		})
		if err != nil {
			return err
		}
		// Released however Serve ends, started or not.
		defer metricsServer.Close()
	}
	managed := labels.SelectorFromSet(labels.Set{rules.LabelManagedBy: rules.ManagedByValue})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Logger: o.Log,
		// Only Palisade's own policies are cached: a cluster may hold
		// tens of thousands of user policies the webhook never reads.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&networkingv1.NetworkPolicy{}: {Label: managed},
		}},
		WebhookServer: server,
		// Metrics are served by metricsserve (authenticated off loopback).
		Metrics:                metricsserver.Options{BindAddress: "0"},
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
	if metricsServer != nil {
		if err := mgr.Add(manager.RunnableFunc(metricsServer.Run)); err != nil {
			return fmt.Errorf("add metrics server: %w", err)
		}
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
