package webhook_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/audit"
	"github.com/palisade-dev/palisade/rules"
	"github.com/palisade-dev/palisade/rules/gatekeeper"
	"github.com/palisade-dev/palisade/webhook"
)

// customRulesLabel marks the namespaces the custom-rules webhook governs,
// so it leaves the rest of the suite alone.
const customRulesLabel = "custom-rules-test"

// customHook is a second Palisade webhook behind the suite's API server,
// with the custom rules in testdata/customrules loaded and its
// configuration generated with CustomRules set, as the chart renders it
// when customRules is given. It governs only namespaces labelled
// customRulesLabel=on (besides the suite's own webhook, which governs
// them too).
type customHook struct {
	auditFile string
	// names are its validating webhooks' names, by the suite's name.
	names map[string]string
}

func startCustomRulesWebhook(t *testing.T, s *suite, ownNamespace string) *customHook {
	t.Helper()
	ctx := context.Background()
	custom, err := gatekeeper.LoadCustomRules(ctx, filepath.Join("testdata", "customrules"))
	if err != nil {
		t.Fatal(err)
	}
	evaluator, err := rules.NewEvaluator(rules.Default())
	if err != nil {
		t.Fatal(err)
	}
	h := &customHook{auditFile: filepath.Join(t.TempDir(), "decisions.jsonl"), names: map[string]string{}}
	recorder, err := audit.NewRecorder(audit.RecorderOptions{File: h.auditFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recorder.Close() })
	paths, err := webhook.Handlers(webhook.Options{
		Evaluator:      evaluator,
		Client:         s.asWebhook,
		Recorder:       recorder,
		Namespace:      ownNamespace,
		ServiceAccount: serviceAccount,
		CustomRules:    custom,
	}, scheme.Scheme)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, handler := range paths {
		mux.Handle(p, handler)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	_, validating := webhook.WebhookConfigurations(webhook.ConfigurationOptions{Namespace: ownNamespace, CustomRules: true})
	validating.Name = "palisade-custom-rules-test"
	for i := range validating.Webhooks {
		w := &validating.Webhooks[i]
		test := strings.Replace(w.Name, ".validate.", ".custom-rules-test.", 1)
		h.names[w.Name] = test
		w.Name = test
		url := srv.URL + *w.ClientConfig.Service.Path
		w.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle}
		w.NamespaceSelector.MatchLabels = map[string]string{customRulesLabel: "on"}
	}
	if err := s.admin.Create(ctx, validating); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.admin.Delete(context.Background(), validating); err != nil {
			t.Errorf("delete %s: %v", validating.Name, err)
		}
	})
	return h
}

// grantSubresources lets the developers group write the subresources
// this file attacks through, as a team with broad rights would have.
func grantSubresources(t *testing.T, s *suite) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "subresource-writer"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods/status", "pods/ephemeralcontainers", "namespaces/status"}, Verbs: []string{"get", "patch", "update"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "subresource-writer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "Group", Name: "developers", APIGroup: "rbac.authorization.k8s.io"}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := s.admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.admin.Delete(context.Background(), o) })
	}
}

// customRulesNamespace creates a governed namespace both webhooks judge
// and waits until the custom-rules webhook answers for it (the API server
// picks up a new configuration within a second or so).
func customRulesNamespace(t *testing.T, s *suite, h *customHook, name string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"owner": "team-x", "env": "dev", "data-classification": "internal", customRulesLabel: "on",
	}}}
	if err := s.admin.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	probe := `
apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: ` + name + `, labels: {app: probe, tier: backend}}
spec: {containers: [{name: c, image: elsewhere.example/x:1}]}
`
	deadline := time.Now().Add(20 * time.Second)
	for {
		res := kubectlAs(t, s, "admin", probe, "create", "--dry-run=server", "-f", "-")
		if res.Exit != 0 && strings.Contains(res.Stderr, h.names["pods.validate.palisade.dev"]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the custom-rules webhook does not judge namespace %s within 20s: exit %d %s", name, res.Exit, res.Stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func customRecords(t *testing.T, h *customHook) []audit.DecisionRecord {
	t.Helper()
	return readRecordFile(t, h.auditFile)
}

// TestCustomRuleSeesEveryPodUpdate: with custom rules loaded, an image
// change on a running pod and an ephemeral container added through
// pods/ephemeralcontainers (kubectl debug) reach the custom rule and are
// denied, with decision records naming the rule (and the subresource);
// the suite's webhook, generated without custom rules, is not even called
// for them.
func TestCustomRuleSeesEveryPodUpdate(t *testing.T) {
	s := needSuite(t)
	grantSubresources(t, s)
	h := startCustomRulesWebhook(t, s, "palisade-custom")
	customRulesNamespace(t, s, h, "cr-shop")
	wantAdmitted(t, kubectlAs(t, s, "alice", `
apiVersion: v1
kind: Pod
metadata:
  name: api
  namespace: cr-shop
  labels: {app: api, tier: backend}
  # Labels and annotations on both sides: the label-only condition of a
  # configuration without custom rules would hold every update back.
  annotations: {team: api}
spec: {containers: [{name: c, image: registry.example/api:1}]}
`, "create", "-f", "-"))
	pods := h.names["pods.validate.palisade.dev"]

	const imageMsg = "[K8sAllowedRegistry/registry-example-only] pod cr-shop/api: containers must run images from registry.example/"
	res := kubectlAs(t, s, "alice", "", "set", "image", "-n", "cr-shop", "pod/api", "c=elsewhere.example/api:2")
	wantDenied(t, res, pods, imageMsg)

	const debugMsg = "[K8sAllowedRegistry/registry-example-only] pod cr-shop/api: ephemeral containers must run images from registry.example/"
	res = kubectlAs(t, s, "alice", "", "debug", "-n", "cr-shop", "api", "--image=elsewhere.example/busybox:1", "--container=debugger", "--profile=general")
	if res.Exit == 0 || !strings.Contains(res.Stderr, `admission webhook "`+pods+`" denied the request: `+debugMsg) {
		t.Fatalf("kubectl debug: exit %d, want the denial %q\nstdout:\n%s\nstderr:\n%s", res.Exit, debugMsg, res.Stdout, res.Stderr)
	}
	// An allowed image through the same subresource is admitted.
	res = kubectlAs(t, s, "alice", "", "debug", "-n", "cr-shop", "api", "--image=registry.example/busybox:1", "--container=debugger", "--profile=general")
	wantAdmitted(t, res)

	pod := &corev1.Pod{}
	if err := s.admin.Get(context.Background(), client.ObjectKey{Namespace: "cr-shop", Name: "api"}, pod); err != nil {
		t.Fatal(err)
	}
	if img := pod.Spec.Containers[0].Image; img != "registry.example/api:1" {
		t.Errorf("image after the denied change: %s", img)
	}
	if n := len(pod.Spec.EphemeralContainers); n != 1 || pod.Spec.EphemeralContainers[0].Image != "registry.example/busybox:1" {
		t.Errorf("ephemeral containers: %+v", pod.Spec.EphemeralContainers)
	}

	recs := customRecords(t, h)
	wantRecord(t, recs, "alice", "validate-pods", "api", audit.DecisionDenied, "K8sAllowedRegistry/registry-example-only", imageMsg)
	found := false
	for _, r := range recs {
		if r.Name == "api" && r.Decision == audit.DecisionDenied && r.Message == "subresource ephemeralcontainers; labels unchanged" &&
			len(r.Rules) == 1 && r.Rules[0].Message == debugMsg {
			found = true
		}
	}
	if !found {
		t.Errorf("no denied record of the ephemeral container naming the subresource")
	}
	// The suite's webhook, configured without custom rules, was never sent
	// these label-neutral updates: that condition is why the configuration
	// must know whether custom rules are loaded.
	for _, r := range decisionRecords(t, s) {
		if r.Namespace == "cr-shop" && r.Name == "api" && r.Operation == "UPDATE" {
			t.Errorf("the webhook without custom rules was sent a label-neutral update: %+v", r)
		}
	}
}
