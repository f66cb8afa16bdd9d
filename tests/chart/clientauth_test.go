package chart_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
	"github.com/palisade-dev/palisade/webhook"
)

// renderBare renders with exactly vals over the chart's defaults: no
// site values.
func renderBare(t *testing.T, vals map[string]any) error {
	t.Helper()
	ch := loadChart(t)
	opts := chartutil.ReleaseOptions{Name: releaseName, Namespace: releaseNS, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValues(ch, vals, opts, capabilities())
	if err != nil {
		return err
	}
	_, err = engine.Render(ch, rv)
	return err
}

// TestBareDefaultsRefuseToInstall: the defaults do not install a webhook
// any pod could call. Without the client CA the install fails naming the
// value and the opt-out; without the control plane's addresses it fails
// naming those; each opt-out is explicit.
func TestBareDefaultsRefuseToInstall(t *testing.T) {
	ca := siteValues(t)["webhook"].(map[string]any)["clientAuth"].(map[string]any)["caBundle"]
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"nothing", nil, "webhook.clientAuth: give caBundle (or caConfigMap)"},
		{"CA only", values("webhook.clientAuth.caBundle", ca), "webhook.networkPolicy.controlPlaneCIDRs: required"},
		{"both CA sources", values("webhook.clientAuth.caBundle", ca, "webhook.clientAuth.caConfigMap", "mine", "webhook.networkPolicy.enabled", false), "caBundle and caConfigMap both set"},
		{"none with a CA", values("webhook.clientAuth.mode", "none", "webhook.clientAuth.caBundle", ca, "webhook.networkPolicy.enabled", false), `only used when mode is "required"`},
		{"not PEM", values("webhook.clientAuth.caBundle", "not a certificate"), "/webhook/clientAuth/caBundle"},
		{"unknown mode", values("webhook.clientAuth.mode", "optional"), "/webhook/clientAuth/mode"},
		{"name with a comma", values("webhook.clientAuth.allowedNames", []any{"a,b"}), "/webhook/clientAuth/allowedNames/0"},
		{"CIDR without length", values("webhook.clientAuth.mode", "none", "webhook.networkPolicy.controlPlaneCIDRs", []any{"10.0.0.1"}), "/webhook/networkPolicy/controlPlaneCIDRs/0"},
		{"zero concurrency", values("webhook.maxConcurrentRequests", 0), "/webhook/maxConcurrentRequests"},
		{"read timeout unit", values("webhook.readTimeout", "10"), "/webhook/readTimeout"},
		{"reader without name", values("metrics.readers", []any{map[string]any{"namespace": "monitoring"}}), "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := renderBare(t, tc.vals)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render: %v, want an error with %q", err, tc.want)
			}
		})
	}
	for _, opt := range []map[string]any{
		values("webhook.clientAuth.mode", "none", "webhook.networkPolicy.enabled", false),
		values("webhook.clientAuth.caConfigMap", "apiserver-client-ca", "webhook.networkPolicy.controlPlaneCIDRs", []any{"10.0.0.10/32", "fd00::10/128"}),
	} {
		if err := renderBare(t, opt); err != nil {
			t.Errorf("render %v: %v", opt, err)
		}
	}
}

// TestClientAuthArgs: the Deployment passes the client CA the values name
// (inline: a ConfigMap the chart renders; caConfigMap: the user's), the
// allowed names, and the server's bounds; mode none passes none of it.
func TestClientAuthArgs(t *testing.T) {
	webhookSpec := func(r *rendered) corev1.PodSpec {
		return typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook")).Spec.Template.Spec
	}
	caVolume := func(spec corev1.PodSpec) string {
		for _, v := range spec.Volumes {
			if v.Name == "client-ca" && v.ConfigMap != nil {
				return v.ConfigMap.Name
			}
		}
		return ""
	}

	r := mustRender(t, defaultRelease, values("webhook.clientAuth.allowedNames", []any{"kube-apiserver", "apiserver.example"},
		"webhook.maxConcurrentRequests", 16, "webhook.readTimeout", "5s"))
	spec := webhookSpec(r)
	args := spec.Containers[0].Args
	for _, want := range []string{"--client-auth=required", "--client-ca-file=/etc/palisade/client-ca/ca.crt",
		"--client-allowed-names=kube-apiserver,apiserver.example", "--max-concurrent-requests=16", "--read-timeout=5s"} {
		if !slices.Contains(args, want) {
			t.Errorf("webhook args %v: want %s", args, want)
		}
	}
	if !strings.Contains(r.notes, "Callers: only the API server's client certificate is judged") {
		t.Errorf("NOTES.txt does not say who may call the webhook:\n%s", r.notes)
	}
	cmName := caVolume(spec)
	cms := r.find("ConfigMap", cmName)
	if cmName == "" || len(cms) != 1 {
		t.Fatalf("client CA volume %q: want the chart's ConfigMap", cmName)
	}
	cm := typed[corev1.ConfigMap](t, cms[0])
	ca := siteValues(t)["webhook"].(map[string]any)["clientAuth"].(map[string]any)["caBundle"].(string)
	if strings.TrimSpace(cm.Data["ca.crt"]) != strings.TrimSpace(ca) {
		t.Errorf("ConfigMap %s ca.crt is not the caBundle value", cmName)
	}

	r = mustRender(t, defaultRelease, values("webhook.clientAuth.caConfigMap", "apiserver-client-ca"))
	if got := caVolume(webhookSpec(r)); got != "apiserver-client-ca" {
		t.Errorf("caConfigMap: volume from %q, want apiserver-client-ca", got)
	}
	for _, cm := range r.find("ConfigMap", "") {
		if strings.HasSuffix(cm.GetName(), "-client-ca") {
			t.Errorf("caConfigMap: the chart still renders %s", cm.GetName())
		}
	}

	r = mustRender(t, defaultRelease, values("webhook.clientAuth.mode", "none"))
	spec = webhookSpec(r)
	if args := spec.Containers[0].Args; !slices.Contains(args, "--client-auth=none") || slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--client-ca-file") }) {
		t.Errorf("mode none: args %v", args)
	}
	if caVolume(spec) != "" {
		t.Error("mode none: a client CA volume is still mounted")
	}
	if !strings.Contains(r.notes, `WARNING: webhook.clientAuth.mode is "none"`) {
		t.Errorf("mode none: NOTES.txt does not warn:\n%s", r.notes)
	}
}

// TestNetworkPolicyAdmitsOnlyControlPlaneAndMonitoring: the release's
// NetworkPolicy selects exactly the webhook pods, isolates their ingress,
// and admits the admission port only from the control-plane ranges and
// the metrics port only from the monitoring namespace; no other port.
func TestNetworkPolicyAdmitsOnlyControlPlaneAndMonitoring(t *testing.T) {
	cidrs := []any{"10.0.0.10/32", "fd00::10/128"}
	r := mustRender(t, defaultRelease, values("webhook.networkPolicy.controlPlaneCIDRs", cidrs, "metrics.monitoringNamespace", "observability"))
	pols := r.find("NetworkPolicy", "")
	if len(pols) != 1 {
		t.Fatalf("%d NetworkPolicies, want 1", len(pols))
	}
	np := typed[networkingv1.NetworkPolicy](t, pols[0])
	if np.Namespace != releaseNS {
		t.Errorf("policy in %q, want the release namespace", np.Namespace)
	}
	dep := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))
	for k, v := range np.Spec.PodSelector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("podSelector %s=%s does not select the webhook pods (%v)", k, v, dep.Spec.Template.Labels)
		}
	}
	if len(np.Spec.PodSelector.MatchLabels) == 0 {
		t.Error("empty podSelector: the policy would select every pod in the namespace")
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes %v, want [Ingress]", np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 2 {
		t.Fatalf("%d ingress rules, want 2: %+v", len(np.Spec.Ingress), np.Spec.Ingress)
	}
	admission, metrics := np.Spec.Ingress[0], np.Spec.Ingress[1]
	port := func(rule networkingv1.NetworkPolicyIngressRule) int32 {
		if len(rule.Ports) != 1 || rule.Ports[0].Port == nil {
			t.Fatalf("rule %+v: want exactly one port", rule)
		}
		return rule.Ports[0].Port.IntVal
	}
	if port(admission) != 9443 || port(metrics) != 8080 {
		t.Errorf("ports %d and %d, want the admission port 9443 and the metrics port 8080", port(admission), port(metrics))
	}
	var got []any
	for _, from := range admission.From {
		if from.IPBlock == nil || from.PodSelector != nil || from.NamespaceSelector != nil || len(from.IPBlock.Except) > 0 {
			t.Errorf("admission peer %+v: want only ipBlocks", from)
			continue
		}
		got = append(got, from.IPBlock.CIDR)
	}
	if !slices.Equal(got, cidrs) {
		t.Errorf("admission port open to %v, want %v", got, cidrs)
	}
	if len(metrics.From) != 1 || metrics.From[0].NamespaceSelector == nil || metrics.From[0].PodSelector != nil ||
		metrics.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "observability" || len(metrics.From[0].NamespaceSelector.MatchLabels) != 1 {
		t.Errorf("metrics peers %+v: want only the namespace observability", metrics.From)
	}

	r = mustRender(t, defaultRelease, values("metrics.monitoringNamespace", ""))
	if np := typed[networkingv1.NetworkPolicy](t, r.find("NetworkPolicy", "")[0]); len(np.Spec.Ingress) != 1 {
		t.Errorf("no monitoring namespace: %d ingress rules, want the admission rule alone", len(np.Spec.Ingress))
	}
	r = mustRender(t, defaultRelease, values("webhook.networkPolicy.enabled", false))
	if n := len(r.find("NetworkPolicy", "")); n != 0 {
		t.Errorf("networkPolicy.enabled=false: %d policies", n)
	}
}

// TestMetricsAccess installs the chart with a listed scraper and asks the
// real API server (SubjectAccessReview) what the metrics check needs:
// both components may create TokenReviews and SubjectAccessReviews, the
// listed scraper may get /metrics, another ServiceAccount may not.
func TestMetricsAccess(t *testing.T) {
	ctx, c := needAPIServer(t)
	rl := rel{"mx", "palisade-mx"}
	r := mustRender(t, rl, values("metrics.readers", []any{map[string]any{"namespace": "monitoring", "name": "prometheus"}}))
	install(ctx, t, c, rl.namespace, r)
	webhookSA := r.oneComponent(t, "ServiceAccount", "webhook").GetName()
	enforcerSA := r.oneComponent(t, "ServiceAccount", "enforcer").GetName()
	for _, sa := range []string{webhookSA, enforcerSA} {
		for _, res := range []struct{ group, resource string }{{"authentication.k8s.io", "tokenreviews"}, {"authorization.k8s.io", "subjectaccessreviews"}} {
			if ok, why := review(ctx, t, c, rl.namespace, sa, call{verb: "create", group: res.group, resource: res.resource}); !ok {
				t.Errorf("%s may not create %s: %s", sa, res.resource, why)
			}
		}
	}
	if ok, why := mayGetMetrics(ctx, t, c, "monitoring", "prometheus"); !ok {
		t.Errorf("the listed scraper may not get /metrics: %s", why)
	}
	for _, who := range [][2]string{{"monitoring", "grafana"}, {rl.namespace, webhookSA}, {"default", "default"}} {
		if ok, _ := mayGetMetrics(ctx, t, c, who[0], who[1]); ok {
			t.Errorf("%s/%s may get /metrics", who[0], who[1])
		}
	}
}

func mayGetMetrics(ctx context.Context, t *testing.T, c client.Client, ns, sa string) (bool, string) {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:                  "system:serviceaccount:" + ns + ":" + sa,
		Groups:                []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
	}}
	if err := c.Create(ctx, sar); err != nil {
		t.Fatalf("SubjectAccessReview: %v", err)
	}
	return sar.Status.Allowed, sar.Status.Reason
}

// checkCallersAndScrapers tries the running webhook process (the chart's
// args, the chart's RBAC) as an attacker would: a forged AdmissionReview
// without a client certificate is 401 and one with the site CA's
// certificate for another name 403, neither in the decision records on its
// stdout, while the API server's certificate is judged and recorded; its
// metrics refuse a scrape without a token (401) and one by a
// ServiceAccount without the chart's metrics-reader role (403), and give
// a bound scraper the series, refusals counted.
func (h *chartWebhook) checkCallersAndScrapers(t *testing.T, cfg *rest.Config, r *rendered) {
	t.Helper()
	ctx := t.Context()
	url := fmt.Sprintf("https://127.0.0.1:%d%s", h.port, webhook.PathValidatePods)
	review := func(uid string) string {
		return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + uid + `",` +
			`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},` +
			`"namespace":"default","name":"forged","operation":"CREATE","userInfo":{"username":"mallory"},` +
			`"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"forged","namespace":"default"},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`
	}
	apiServer, err := site(t).Issue(site(t).ClientName)
	if err != nil {
		t.Fatal(err)
	}
	otherName, err := site(t).Issue("mallory")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		uid    string
		certs  []tls.Certificate
		status int
	}{
		{"forged-no-cert", nil, http.StatusUnauthorized},
		{"forged-other-name", []tls.Certificate{otherName}, http.StatusForbidden},
		{"from-the-api-server", []tls.Certificate{apiServer}, http.StatusOK},
	} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: tc.certs}}} //nolint:gosec // the caller does not check the server
		resp, err := c.Post(url, "application/json", strings.NewReader(review(tc.uid)))
		if err != nil {
			t.Fatalf("%s: %v", tc.uid, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d (%s), want %d", tc.uid, resp.StatusCode, body, tc.status)
		}
	}
	recorded := func(uid string) bool { return strings.Contains(h.out.String(), `"requestUID":"`+uid+`"`) }
	// Records are written before the answer, but reach h.out through the
	// child's stdout pipe a moment later: wait for the judged one, then
	// look for the forged ones, which were answered before it.
	for deadline := time.Now().Add(5 * time.Second); !recorded("from-the-api-server") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !recorded("from-the-api-server") {
		t.Errorf("the API server's review has no decision record on stdout:\n%s", h.out.String())
	}
	for _, uid := range []string{"forged-no-cert", "forged-other-name"} {
		if recorded(uid) {
			t.Errorf("forged review %s has a decision record", uid)
		}
	}

	reader := ""
	for _, cr := range r.find("ClusterRole", "") {
		if strings.HasSuffix(cr.GetName(), "-metrics-reader") {
			reader = cr.GetName()
		}
	}
	objs := []client.Object{
		// Created through the webhook, which holds it to the standard.
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "monitoring", Labels: map[string]string{"owner": "ops", "env": "prod", "data-classification": "internal"}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: "prometheus"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: "grafana"}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "prometheus-" + reader},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: reader},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "monitoring", Name: "prometheus"}},
		},
	}
	for _, o := range objs {
		if err := h.c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	metricsURL := fmt.Sprintf("https://127.0.0.1:%d/metrics", h.metricsPort)
	for _, tc := range []struct {
		who    string
		status int
	}{{"", http.StatusUnauthorized}, {"grafana", http.StatusForbidden}, {"prometheus", http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, metricsURL, nil)
		if tc.who != "" {
			token, err := testenv.ServiceAccountToken(ctx, cfg, "monitoring", tc.who)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed; the token authenticates
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("scrape as %q: %v", tc.who, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("scrape as %q: status %d (%s), want %d", tc.who, resp.StatusCode, body, tc.status)
		}
		if tc.status == http.StatusOK && !strings.Contains(string(body), `palisade_webhook_refused_requests_total{reason="no-certificate"} 1`) {
			t.Errorf("the scrape does not count the forged review:\n%s", body)
		}
	}
}
