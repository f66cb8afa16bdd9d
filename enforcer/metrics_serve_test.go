package enforcer

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// TestMetricsOffLoopbackNeedAnAuthorizedToken serves the agent's metrics
// on every address, as the chart's host-network DaemonSet does, acting as
// the enforcer's service account with the chart's metrics-auth rules, and
// scrapes them on loopback with tokens the real API server issued: none
// 401, a service account without get on /metrics 403, the scraper the
// series. On a loopback address they stay plain HTTP.
func TestMetricsOffLoopbackNeedAnAuthorizedToken(t *testing.T) {
	cfg, c := startAPIServer(t)
	ctx := t.Context()
	const ns, sa = "palisade-system", "palisade-enforcer"
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "palisade-metrics-auth"}, Rules: testenv.MetricsAuthRules()},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "palisade-metrics-auth"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "palisade-metrics-auth"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}},
		},
	}
	for _, o := range append(objs, testenv.Scrapers()...) {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	asEnforcer := rest.CopyConfig(cfg)
	asEnforcer.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa}

	serve := func(addr string) {
		t.Helper()
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "palisade_enforcer_probe_total", Help: "probe"}))
		a, err := New(asEnforcer, Options{NodeName: "node1", Registerer: reg, MetricsAddr: addr, HealthAddr: "0"})
		if err != nil {
			t.Fatal(err)
		}
		stop, err := a.serveHTTP(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}

	port := freeTestPort(t)
	serve(fmt.Sprintf(":%d", port))
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", port)
	scraper, err := testenv.ServiceAccountToken(ctx, cfg, testenv.MonitoringNamespace, testenv.Scraper)
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.ServiceAccountToken(ctx, cfg, testenv.MonitoringNamespace, testenv.NotAScraper)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"service account without get on /metrics", other, http.StatusForbidden},
		{"the scraper", scraper, http.StatusOK},
	} {
		status, body := getMetrics(t, url, tc.token)
		if status != tc.status || strings.Contains(body, "palisade_enforcer_probe_total") != (tc.status == http.StatusOK) {
			t.Errorf("%s: status %d body %q, want %d (series only with 200)", tc.name, status, body, tc.status)
		}
	}

	local := freeTestPort(t)
	serve(fmt.Sprintf("127.0.0.1:%d", local))
	if status, body := getMetrics(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", local), ""); status != http.StatusOK || !strings.Contains(body, "palisade_enforcer_probe_total") {
		t.Errorf("loopback metrics: status %d, want the series in plain HTTP", status)
	}
}

func freeTestPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func getMetrics(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed; the token authenticates
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
