package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/palisade-dev/palisade/audit"
	"github.com/palisade-dev/palisade/rules"
	"github.com/palisade-dev/palisade/rules/gatekeeper"
	"github.com/palisade-dev/palisade/webhook"
)

// webhookConfig is everything `palisade webhook` takes from its flags.
type webhookConfig struct {
	kubeconfig     string
	standard       string
	rulesDir       string
	auditFile      string
	auditStdout    bool
	auditFsync     bool
	certDir        string
	host           string
	port           int
	metricsAddr    string
	healthAddr     string
	namespace      string
	serviceAccount string
	certMode       string
	certSecret     string
	serviceName    string
	mutatingCfg    string
	validatingCfg  string
	clientAuth     string
	clientCAFile   string
	clientNames    []string
	maxConcurrent  int
	readTimeout    time.Duration
	metricsCertDir string
}

func newWebhookCommand(run func(context.Context, webhookConfig) error) *cobra.Command {
	cfg := webhookConfig{}
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Run the admission webhook and the baseline policy reconciler",
		Long: `Serves Palisade's mutating and validating admission webhook over TLS and keeps
every governed namespace's baseline NetworkPolicies in place. Every decision is
written as one hash-chained JSON line (stdout and/or --audit-file).

The serving certificate (--cert-mode) is in place before the server starts:
  self-managed  a CA and a serving certificate generated into --cert-secret,
                the CA injected into both webhook configurations, rotated
                before expiry; the Secret is owned by --service-name, so
                deleting the Service (helm uninstall) deletes it
  cert-manager  the Secret cert-manager issues (--cert-secret), checked and
                followed; cainjector fills the CA bundle
  secret        your kubernetes.io/tls Secret (--cert-secret), checked and
                followed; the CA bundle is yours to set
  files         tls.crt and tls.key already in --cert-dir, put there by
                someone else (local runs and tests); reloaded on change
The replica reports ready (/readyz) only once it serves a certificate.

Only the API server is judged and recorded (--client-auth=required, the
default): kube-apiserver presents a client certificate to the webhook when
started with --admission-control-config-file (README: Install). A request
without one gets 401, one from another CA or for a name outside
--client-allowed-names 403; each is counted
(palisade_webhook_refused_requests_total) and never judged, recorded or
turned into an Event. --client-auth=none accepts any caller that reaches
the port, and says so loudly at start.

Metrics on a loopback --metrics-bind-address are plain HTTP; on any other
address they are served over TLS and each scrape must carry a token the API
server authenticates (TokenReview) for a user allowed get on the
non-resource URL /metrics (SubjectAccessReview).`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if cfg.port < 1 || cfg.port > 65535 {
				return usageError{fmt.Errorf("--port %d: want 1-65535", cfg.port)}
			}
			if cfg.namespace == "" {
				return usageError{fmt.Errorf("--namespace: empty; set it or POD_NAMESPACE")}
			}
			if cfg.serviceAccount == "" {
				cfg.serviceAccount = "system:serviceaccount:" + cfg.namespace + ":palisade-webhook"
			}
			if err := validateCertFlags(cfg); err != nil {
				return err
			}
			return validateServerFlags(cfg)
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), cfg) },
	}
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = webhook.DefaultNamespace
	}
	f := cmd.Flags()
	f.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else in-cluster)")
	f.StringVar(&cfg.standard, "standard", "", "labeling standard YAML file (default: the embedded default standard)")
	f.StringVar(&cfg.rulesDir, "rules", "", "directory of custom Gatekeeper ConstraintTemplates and Constraints (Rego or CEL), evaluated in-process")
	f.StringVar(&cfg.auditFile, "audit-file", "", "append decision records to this file (hash-chained; resumed on restart)")
	f.BoolVar(&cfg.auditStdout, "audit-stdout", true, "write decision records to stdout")
	f.BoolVar(&cfg.auditFsync, "audit-fsync", false, "fsync --audit-file after every record")
	f.StringVar(&cfg.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key (reloaded on change)")
	f.StringVar(&cfg.host, "host", "", "address to serve admission on (default: all)")
	f.IntVar(&cfg.port, "port", 9443, "port to serve admission on")
	f.StringVar(&cfg.metricsAddr, "metrics-bind-address", ":8080", `Prometheus metrics address ("0" disables)`)
	f.StringVar(&cfg.healthAddr, "health-probe-bind-address", ":8081", `/healthz and /readyz address ("0" disables)`)
	f.StringVar(&cfg.namespace, "namespace", ns, "Palisade's own namespace, never governed (default: $POD_NAMESPACE or palisade-system)")
	f.StringVar(&cfg.serviceAccount, "service-account", "", "user name Palisade acts as, the only one allowed to write managed policies (default: system:serviceaccount:<namespace>:palisade-webhook)")
	f.StringVar(&cfg.certMode, "cert-mode", certModeSelfManaged, "where the serving certificate comes from: "+strings.Join(certModes, ", "))
	f.StringVar(&cfg.certSecret, "cert-secret", defaultCertSecret, "kubernetes.io/tls Secret in --namespace holding the serving certificate (self-managed: written; cert-manager, secret: read)")
	f.StringVar(&cfg.serviceName, "service-name", defaultServiceName, "webhook Service in --namespace: the certificate must cover <service>.<namespace>.svc; self-managed: owns the Secret")
	f.StringVar(&cfg.mutatingCfg, "mutating-configuration", webhook.MutatingConfigurationName, "MutatingWebhookConfiguration that gets the CA bundle (self-managed)")
	f.StringVar(&cfg.validatingCfg, "validating-configuration", webhook.ValidatingConfigurationName, "ValidatingWebhookConfiguration that gets the CA bundle (self-managed)")
	f.StringVar(&cfg.clientAuth, "client-auth", clientAuthRequired, "who may call the admission server: required (a client certificate --client-ca-file signed, i.e. the API server) or none (anyone who reaches the port)")
	f.StringVar(&cfg.clientCAFile, "client-ca-file", "", "PEM CA that signed the API server's webhook client certificate (reloaded on change); required with --client-auth=required")
	f.StringSliceVar(&cfg.clientNames, "client-allowed-names", nil, "common names or DNS SANs accepted from --client-ca-file (default: any certificate it signed for client auth; set it when the CA also signs other clients)")
	f.IntVar(&cfg.maxConcurrent, "max-concurrent-requests", webhook.DefaultMaxConcurrentRequests, "admission requests served at once; beyond it 429 (the API server's failurePolicy applies)")
	f.DurationVar(&cfg.readTimeout, "read-timeout", webhook.DefaultReadTimeout, "time to read one admission request, headers and body")
	f.StringVar(&cfg.metricsCertDir, "metrics-cert-dir", "", "tls.crt and tls.key for the metrics endpoint off loopback (default: self-signed)")
	return cmd
}

// runWebhook loads and checks everything before serving: a bad standard or
// audit file stops the process with the reason, before it takes traffic.
func runWebhook(ctx context.Context, cfg webhookConfig) error {
	if err := checkClientCA(cfg.clientCAFile); err != nil {
		return err
	}
	std := rules.Default()
	if cfg.standard != "" {
		var err error
		if std, err = rules.Load(cfg.standard); err != nil {
			return usageError{err}
		}
	}
	evaluator, err := rules.NewEvaluator(std)
	if err != nil {
		return usageError{fmt.Errorf("load standard: %w", err)}
	}
	var custom webhook.CustomRuleReviewer
	if cfg.rulesDir != "" {
		cr, err := gatekeeper.LoadCustomRules(ctx, cfg.rulesDir)
		if err != nil {
			return usageError{err}
		}
		custom = cr
	}
	restCfg, err := restConfig(cfg.kubeconfig)
	if err != nil {
		return err
	}
	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, nil))
	ctrl.SetLogger(log)
	// The certificate is in place (and, self-managed, its CA in the
	// configurations) before the server starts: the server cannot start
	// without one, and one the API server cannot verify fails every
	// governed admission.
	src, err := newCertificateSource(cfg, restCfg, log)
	if err != nil {
		return err
	}
	serve := webhook.ServeOptions{}
	if src == nil {
		if err := checkCertDir(cfg.certDir); err != nil {
			return err
		}
	} else {
		if err := firstCertificate(ctx, src.Ensure, log, certificateWait); err != nil {
			return err
		}
		serve.Runnables = []manager.Runnable{src}
		serve.ReadyChecks = map[string]healthz.Checker{"certificates": src.Ready}
	}
	opts := audit.RecorderOptions{File: cfg.auditFile, SyncEachRecord: cfg.auditFsync}
	if cfg.auditStdout {
		opts.Stdout = os.Stdout
	}
	recorder, err := audit.NewRecorder(opts)
	if err != nil {
		return err
	}
	defer recorder.Close()
	serve.Options = webhook.Options{
		Evaluator:      evaluator,
		Recorder:       recorder,
		Namespace:      cfg.namespace,
		ServiceAccount: cfg.serviceAccount,
		CustomRules:    custom,
		Log:            log,
	}
	serve.Host, serve.Port, serve.CertDir = cfg.host, cfg.port, cfg.certDir
	serve.ClientCAFile, serve.ClientNames = cfg.clientCAFile, cfg.clientNames
	serve.MaxConcurrentRequests, serve.ReadTimeout = cfg.maxConcurrent, cfg.readTimeout
	serve.MetricsAddr, serve.HealthAddr, serve.MetricsCertDir = cfg.metricsAddr, cfg.healthAddr, cfg.metricsCertDir
	return webhook.Serve(ctx, restCfg, serve)
}

// restConfig reads --kubeconfig, else $KUBECONFIG, else the in-cluster
// service account.
func restConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if ic, icErr := rest.InClusterConfig(); icErr == nil {
			return ic, nil
		}
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}

// usageError marks bad flags or input files: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
func (e usageError) ExitCode() int { return 2 }
