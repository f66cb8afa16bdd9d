package certs_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/certs"
	"github.com/palisade-dev/palisade/rules"
	"github.com/palisade-dev/palisade/webhook"
)

// TestWebhookServesWithManagedCertificates runs Palisade's real admission
// server (webhook.Serve) on the certificate directory a Manager keeps, and
// lets the real API server call it through a Service: the API server
// verifies the serving certificate against the injected caBundle for the
// name <service>.<namespace>.svc. Admissions keep being judged by the
// webhook, never failed on TLS, through a forced rotation without a
// restart.
func TestWebhookServesWithManagedCertificates(t *testing.T) {
	f := newFixture(t)
	if !serveOnce.CompareAndSwap(false, true) {
		t.Skip("webhook.Serve registers its controllers once per process; run with -count=1")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	port := freePort(t)

	// The Service resolves to this machine's loopback: the API server
	// dials localhost but verifies the Service's DNS name.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "palisade-e2e", Namespace: f.ns},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost"},
	}
	if err := admin.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	// Live configurations (fail closed), limited to namespaces carrying
	// this test's label so that other tests are not judged.
	_, validating := webhook.WebhookConfigurations(webhook.ConfigurationOptions{Namespace: f.ns, ServiceName: svc.Name, ServicePort: int32(port)})
	validating.Name = f.ns + "-e2e"
	for i := range validating.Webhooks {
		validating.Webhooks[i].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"certs-test/e2e": f.ns}}
	}
	if err := admin.Create(ctx, validating); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Delete(context.Background(), validating) }) //nolint:errcheck // best effort

	// Wiring as cmd/palisade would do it: one pass before the server
	// starts (it needs a certificate to start), then the Manager runs.
	dir := t.TempDir()
	o := certs.Options{
		Namespace: f.ns, SecretName: secretName, ServiceName: svc.Name, CertDir: dir,
		Validating: validating.Name, PropagationDelay: 500 * time.Millisecond,
	}
	admins, err := client.NewWithWatch(apiCfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := certs.NewManager(admins, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	go m.Run(ctx) //nolint:errcheck // nil on cancel

	evaluator, err := rules.NewEvaluator(rules.Default())
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := webhook.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		served <- webhook.Serve(ctx, apiCfg, webhook.ServeOptions{
			Options: webhook.Options{
				Evaluator: evaluator, Namespace: f.ns, Metrics: metrics,
				ServiceAccount: "system:serviceaccount:" + f.ns + ":palisade-webhook",
			},
			Host: "127.0.0.1", Port: port, CertDir: dir, MetricsAddr: "0", HealthAddr: "0",
			ClientCAFile: clientAuth.CAFile, ClientNames: []string{clientAuth.ClientName},
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("webhook.Serve: %v", err)
		}
	})
	waitFor(t, 30*time.Second, "the webhook to serve TLS", func() bool {
		select {
		case err := <-served:
			served <- err // for the cleanup
			t.Fatalf("webhook.Serve ended early: %v", err)
		default:
		}
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only waits for the port
		if err == nil {
			conn.Close()
		}
		return err == nil
	})

	// A governed namespace, admitted by the webhook.
	target := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-app", Labels: map[string]string{
		"certs-test/e2e": f.ns, "owner": "ops", "env": "dev", "data-classification": "internal",
	}}}
	if err := admin.Create(ctx, target); err != nil {
		t.Fatalf("compliant namespace refused: %v", err)
	}

	// judged asks the API server to create a pod the standard denies
	// (dry run) and reports whether the webhook itself answered.
	judged := func() error {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "unlabelled", Namespace: target.Name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/c:1"}}},
		}
		err := admin.Create(ctx, pod, client.DryRunAll)
		switch {
		case err == nil:
			return fmt.Errorf("non-compliant pod admitted")
		case strings.Contains(err.Error(), "denied the request") && strings.Contains(err.Error(), "[pod-"):
			return nil
		default:
			return err
		}
	}
	if err := judged(); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	before := f.secret(t)

	done := make(chan struct{})
	var stopProbing atomic.Bool
	var failures []error
	calls := 0
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			default:
			}
			if err := judged(); err != nil {
				failures = append(failures, err)
			}
			calls++
			if calls >= 400 {
				return
			}
			time.Sleep(5 * time.Millisecond)
			if stopProbing.Load() {
				return
			}
		}
	}()
	if err := m.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	after := f.secret(t)
	if string(after.Data[certs.KeyCert]) == string(before.Data[certs.KeyCert]) {
		t.Fatal("rotation kept the serving certificate")
	}
	want := firstCert(t, after.Data[certs.KeyCert])
	waitFor(t, 20*time.Second, "the webhook to serve the rotated certificate", func() bool {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // compares the leaf itself
		if err != nil {
			return false
		}
		defer conn.Close()
		return string(conn.ConnectionState().PeerCertificates[0].Raw) == string(want.Raw)
	})
	if err := judged(); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	stopProbing.Store(true)
	<-done
	for _, err := range failures {
		t.Errorf("admission during rotation not judged by the webhook: %v", err)
	}
	t.Logf("%d admissions judged during the rotation", calls)
}

var serveOnce atomic.Bool

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
