package certs_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/palisade-dev/palisade/certs"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
	"github.com/palisade-dev/palisade/webhook"
)

// One real control plane for the package's API tests.
var (
	apiCfg *rest.Config
	admin  client.Client
	// clientAuth is what the API server presents to webhooks, and what
	// a webhook started by a test trusts.
	clientAuth *testenv.WebhookClientAuth
	skipWhy    string
	fixtures   int
	fixMu      sync.Mutex
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	assets, reason := testenv.Assets()
	if reason != "" {
		skipWhy = reason
		return m.Run()
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	// The API server presents its client certificate to the webhooks it
	// calls, as the README's Install section has a cluster do.
	authDir, err := os.MkdirTemp("", "palisade-certs-client-auth-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create client auth dir:", err)
		return 1
	}
	defer os.RemoveAll(authDir)
	if clientAuth, err = testenv.ConfigureWebhookClientAuth(env, authDir); err != nil {
		fmt.Fprintln(os.Stderr, "configure webhook client auth:", err)
		return 1
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		return 1
	}
	defer env.Stop()
	apiCfg = cfg
	if admin, err = client.New(cfg, client.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "create client:", err)
		return 1
	}
	return m.Run()
}

// fixture is one isolated installation: its own namespace, webhook
// configurations, RBAC and a client acting as its service account.
type fixture struct {
	ns, mutating, validating string
	sa                       client.WithWatch // the webhook's service account, bound by the certs RBAC
}

const (
	secretName  = "palisade-webhook-tls"
	serviceName = "palisade-webhook"
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if apiCfg == nil {
		testenv.SkipOrFail(t, "%s", skipWhy)
	}
	fixMu.Lock()
	fixtures++
	n := fixtures
	fixMu.Unlock()
	ctx := context.Background()
	f := &fixture{ns: fmt.Sprintf("certs-%d", n)}
	f.mutating, f.validating = f.ns+"-mutate", f.ns+"-validate"

	// The configurations exactly as the chart renders them, except that
	// they match no object: nothing here serves them.
	mutating, validating := webhook.WebhookConfigurations(webhook.ConfigurationOptions{Namespace: f.ns, ServiceName: serviceName})
	mutating.Name, validating.Name = f.mutating, f.validating
	ignore := admissionregistrationv1.Ignore
	never := &metav1.LabelSelector{MatchLabels: map[string]string{"certs-test/never": "true"}}
	for i := range mutating.Webhooks {
		mutating.Webhooks[i].FailurePolicy, mutating.Webhooks[i].ObjectSelector = &ignore, never
	}
	for i := range validating.Webhooks {
		validating.Webhooks[i].FailurePolicy, validating.Webhooks[i].ObjectSelector = &ignore, never
	}
	user := "system:serviceaccount:" + f.ns + ":palisade-webhook"
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}},
		mutating, validating,
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "certs", Namespace: f.ns}, Rules: append(certs.RoleRules(secretName, serviceName), certs.ProvidedRoleRules("user-tls")...)},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "certs", Namespace: f.ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "certs"},
			Subjects:   []rbacv1.Subject{{Kind: "User", Name: user, APIGroup: "rbac.authorization.k8s.io"}},
		},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-certs"}, Rules: certs.ClusterRoleRules(f.mutating, f.validating)},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-certs"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: f.ns + "-certs"},
			Subjects:   []rbacv1.Subject{{Kind: "User", Name: user, APIGroup: "rbac.authorization.k8s.io"}},
		},
		// The webhook Service, owner of the self-managed Secret.
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: serviceName, Namespace: f.ns},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https-webhook", Port: 443}}},
		},
	}
	for _, o := range objs {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	t.Cleanup(func() {
		for _, o := range objs[1:3] {
			admin.Delete(context.Background(), o) //nolint:errcheck // best effort
		}
	})
	asSA := rest.CopyConfig(apiCfg)
	asSA.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.NewWithWatch(asSA, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.sa = c
	return f
}

func (f *fixture) options(dir string) certs.Options {
	return certs.Options{
		Namespace: f.ns, SecretName: secretName, ServiceName: serviceName, CertDir: dir,
		Mutating: f.mutating, Validating: f.validating,
	}
}

func (f *fixture) secret(t *testing.T) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := admin.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: secretName}, s); err != nil {
		t.Fatalf("get secret: %v", err)
	}
	return s
}

// bundles returns the caBundle of every webhook of both configurations,
// as the API server has them, and the configurations' resourceVersions.
func (f *fixture) bundles(t *testing.T) (bundles [][]byte, versions []string) {
	t.Helper()
	ctx := context.Background()
	mut := &admissionregistrationv1.MutatingWebhookConfiguration{}
	val := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := admin.Get(ctx, client.ObjectKey{Name: f.mutating}, mut); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(ctx, client.ObjectKey{Name: f.validating}, val); err != nil {
		t.Fatal(err)
	}
	for _, w := range mut.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	for _, w := range val.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	return bundles, []string{mut.ResourceVersion, val.ResourceVersion}
}

// logSink collects log lines for assertions.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{Verbosity: 1})
}

func (l *logSink) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// currentBundles is what the API server holds now, without failing t (it
// runs on other goroutines).
func (f *fixture) currentBundles() ([][]byte, error) {
	ctx := context.Background()
	mut := &admissionregistrationv1.MutatingWebhookConfiguration{}
	val := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := admin.Get(ctx, client.ObjectKey{Name: f.mutating}, mut); err != nil {
		return nil, err
	}
	if err := admin.Get(ctx, client.ObjectKey{Name: f.validating}, val); err != nil {
		return nil, err
	}
	return [][]byte{mut.Webhooks[0].ClientConfig.CABundle, val.Webhooks[0].ClientConfig.CABundle}, nil
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }
