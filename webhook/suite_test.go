package webhook_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/palisade-dev/palisade/audit"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
	"github.com/palisade-dev/palisade/rules"
	"github.com/palisade-dev/palisade/webhook"
)

const serviceAccount = testenv.WebhookServiceAccount

// suite is one real control plane with the webhook serving, shared by the
// tests of this package (starting one costs seconds).
type suite struct {
	admin     client.Client
	asWebhook client.Client              // acts as the webhook's service account
	addr      string                     // the webhook's TLS address
	kubectl   map[string]testenv.Kubectl // by user: admin, alice
	auditFile string
	metrics   *prometheus.Registry
	// clientAuth is the API server's webhook client certificate setup:
	// the webhook accepts only certificates its CA signed for its name.
	clientAuth *testenv.WebhookClientAuth
	// metricsURL is the webhook's /metrics, bound to all addresses (so
	// served over TLS to API-server-checked tokens), reached on loopback.
	metricsURL string
	adminCfg   *rest.Config
}

var (
	shared     *suite
	sharedSkip string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	assets, reason := testenv.Assets()
	if reason != "" {
		sharedSkip = reason
		return m.Run()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	// The API server presents its client certificate to the webhook, as
	// the chart's README asks a cluster to (--admission-control-config-file).
	authDir, err := os.MkdirTemp("", "palisade-webhook-client-auth-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create client auth dir:", err)
		return 1
	}
	defer os.RemoveAll(authDir)
	clientAuth, err := testenv.ConfigureWebhookClientAuth(env, authDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "configure webhook client auth:", err)
		return 1
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		return 1
	}
	defer env.Stop()
	s, stop, err := startSuite(ctx, env, cfg, assets, clientAuth)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start webhook suite:", err)
		return 1
	}
	defer stop()
	shared = s
	return m.Run()
}

func needSuite(t *testing.T) *suite {
	t.Helper()
	if shared == nil {
		testenv.SkipOrFail(t, "%s", sharedSkip)
	}
	return shared
}

func startSuite(ctx context.Context, env *envtest.Environment, cfg *rest.Config, assets string, clientAuth *testenv.WebhookClientAuth) (*suite, func(), error) {
	admin, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "palisade-webhook-suite-")
	if err != nil {
		return nil, nil, err
	}
	// A namespace that exists before Palisade is installed: the
	// reconciler must give it its baseline.
	legacy := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Labels: map[string]string{"owner": "ops", "env": "prod", "data-classification": "internal"}}}
	for _, obj := range append(append([]client.Object{legacy}, testenv.RBAC()...), testenv.Scrapers()...) {
		if err := admin.Create(ctx, obj); err != nil {
			return nil, nil, fmt.Errorf("create %s: %w", obj.GetName(), err)
		}
	}

	// Install the webhook configurations now, exactly as the chart
	// would, routed to the local server.
	mutating, validating := webhook.WebhookConfigurations(webhook.ConfigurationOptions{})
	for i := range mutating.Webhooks {
		trimPath(mutating.Webhooks[i].ClientConfig.Service)
	}
	for i := range validating.Webhooks {
		trimPath(validating.Webhooks[i].ClientConfig.Service)
	}
	wio := &env.WebhookInstallOptions
	wio.MutatingWebhooks = append(wio.MutatingWebhooks, mutating)
	wio.ValidatingWebhooks = append(wio.ValidatingWebhooks, validating)
	if err := wio.ModifyWebhookDefinitions(); err != nil {
		return nil, nil, err
	}

	evaluator, err := rules.NewEvaluator(rules.Default())
	if err != nil {
		return nil, nil, err
	}
	auditFile := filepath.Join(dir, "decisions.jsonl")
	recorder, err := audit.NewRecorder(audit.RecorderOptions{File: auditFile})
	if err != nil {
		return nil, nil, err
	}
	reg := prometheus.NewRegistry()
	metrics, err := webhook.NewMetrics(reg)
	if err != nil {
		return nil, nil, err
	}
	// The webhook acts as its service account, bound by the RBAC the
	// chart grants it: the tests see least privilege at work.
	asWebhook := rest.CopyConfig(cfg)
	asWebhook.Impersonate = rest.ImpersonationConfig{UserName: serviceAccount}
	metricsPort, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- webhook.Serve(runCtx, asWebhook, webhook.ServeOptions{
			Options: webhook.Options{
				Evaluator:      evaluator,
				Recorder:       recorder,
				ServiceAccount: serviceAccount,
				Metrics:        metrics,
			},
			Host:         wio.LocalServingHost,
			Port:         wio.LocalServingPort,
			CertDir:      wio.LocalServingCertDir,
			ClientCAFile: clientAuth.CAFile,
			ClientNames:  []string{clientAuth.ClientName},
			// Small bounds, so that the limits tests reach them quickly.
			MaxConcurrentRequests: suiteMaxConcurrent,
			ReadTimeout:           suiteReadTimeout,
			MetricsAddr:           fmt.Sprintf(":%d", metricsPort),
			MetricsGatherer:       reg,
			HealthAddr:            "0",
		})
	}()
	stop := func() {
		stopRun()
		<-done
		recorder.Close()
		os.RemoveAll(dir)
	}
	if err := waitTLS(ctx, net.JoinHostPort(wio.LocalServingHost, fmt.Sprint(wio.LocalServingPort)), done); err != nil {
		stop()
		return nil, nil, err
	}
	if err := wio.Install(cfg); err != nil {
		stop()
		return nil, nil, fmt.Errorf("install webhook configurations: %w", err)
	}

	kubectl := map[string]testenv.Kubectl{}
	for _, u := range []envtest.User{{Name: "admin", Groups: []string{"system:masters"}}, {Name: "alice", Groups: []string{"developers"}}} {
		au, err := env.AddUser(u, cfg)
		if err != nil {
			stop()
			return nil, nil, err
		}
		kc, err := au.KubeConfig()
		if err != nil {
			stop()
			return nil, nil, err
		}
		path := filepath.Join(dir, u.Name+".kubeconfig")
		if err := os.WriteFile(path, kc, 0o600); err != nil {
			stop()
			return nil, nil, err
		}
		kubectl[u.Name] = testenv.Kubectl{Path: filepath.Join(assets, "kubectl"), Kubeconfig: path}
	}
	asWebhookClient, err := client.New(asWebhook, client.Options{})
	if err != nil {
		stop()
		return nil, nil, err
	}
	return &suite{
		admin: admin, asWebhook: asWebhookClient, kubectl: kubectl, auditFile: auditFile, metrics: reg, clientAuth: clientAuth,
		metricsURL: fmt.Sprintf("https://127.0.0.1:%d/metrics", metricsPort), adminCfg: cfg,
		addr: net.JoinHostPort(wio.LocalServingHost, fmt.Sprint(wio.LocalServingPort)),
	}, stop, nil
}

// The admission server's bounds in the suite.
const (
	suiteMaxConcurrent = 16
	suiteReadTimeout   = 2 * time.Second
)

// asAPIServer returns an HTTP client presenting a certificate the
// webhook's client CA signed for the API server's name: requests the
// tests make up are then judged as if the API server had sent them.
func (s *suite) asAPIServer(t *testing.T) *http.Client {
	t.Helper()
	cert, err := s.clientAuth.Issue(s.clientAuth.ClientName)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the test checks the webhook, not its serving certificate
		Certificates:       []tls.Certificate{cert},
	}}}
}

// freePort returns a port free on every address now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// trimPath drops the leading slash envtest would double when it turns the
// service reference into a URL.
func trimPath(s *admissionregistrationv1.ServiceReference) {
	if s != nil && s.Path != nil {
		p := strings.TrimPrefix(*s.Path, "/")
		s.Path = &p
	}
}

func waitTLS(ctx context.Context, addr string, done <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return fmt.Errorf("webhook exited early: %v", err)
		default:
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("webhook did not serve TLS on %s within 30s", addr)
}
