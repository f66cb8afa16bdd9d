package webhook_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/audit"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// kubectlAs runs the real kubectl as user and returns what it printed.
func kubectlAs(t *testing.T, s *suite, user, stdin string, args ...string) testenv.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.kubectl[user].Run(ctx, strings.TrimPrefix(stdin, "\n"), args...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// wantDenied asserts kubectl failed with exactly these denial lines (each
// a whole line of stderr but warnings, the first after the webhook's
// prefix).
func wantDenied(t *testing.T, res testenv.Result, webhook string, lines ...string) {
	t.Helper()
	if res.Exit == 0 {
		t.Fatalf("admitted, want denied by %s\nstdout:\n%s\nstderr:\n%s", webhook, res.Stdout, res.Stderr)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(res.Stderr), "\n") {
		if !strings.HasPrefix(line, "Warning: ") { // warnings are asserted apart
			got = append(got, line)
		}
	}
	if len(got) == 0 {
		got = []string{""}
	}
	prefix := `admission webhook "` + webhook + `" denied the request: `
	want := append([]string(nil), lines...)
	if len(got) != len(want) || !strings.HasSuffix(got[0], prefix+want[0]) {
		t.Fatalf("stderr:\n%s\nwant a denial by %s with lines:\n%s", res.Stderr, webhook, strings.Join(want, "\n"))
	}
	for i := 1; i < len(want); i++ {
		if got[i] != want[i] {
			t.Errorf("stderr line %d = %q, want %q", i+1, got[i], want[i])
		}
	}
}

func wantAdmitted(t *testing.T, res testenv.Result) {
	t.Helper()
	if res.Exit != 0 {
		t.Fatalf("denied, want admitted: exit %d\nstderr:\n%s", res.Exit, res.Stderr)
	}
}

// decisionRecords reads every record the suite's webhook wrote so far.
func decisionRecords(t *testing.T, s *suite) []audit.DecisionRecord {
	t.Helper()
	return readRecordFile(t, s.auditFile)
}

// readRecordFile reads a decision record file, which must verify.
func readRecordFile(t *testing.T, path string) []audit.DecisionRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(bytes.NewReader(data)); err != nil {
		t.Fatalf("%s does not verify: %v", path, err)
	}
	recs, err := audit.ReadRecords(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// wantRecord asserts that a decision record for (user, webhook, name)
// exists with decision and exactly one rule result of ruleID with message.
func wantRecord(t *testing.T, recs []audit.DecisionRecord, user, webhook, name string, decision audit.Decision, ruleID, message string) {
	t.Helper()
	for _, r := range recs {
		if r.User != user || r.Webhook != webhook || r.Name != name || r.Decision != decision {
			continue
		}
		for _, rr := range r.Rules {
			if rr.RuleID == ruleID && rr.Message == message {
				return
			}
		}
	}
	t.Errorf("no %s record by %s on %s/%s with rule %s message %q", decision, user, webhook, name, ruleID, message)
}

// TestGuardRulesCannotBeRelaxed: an override naming a guard rule is
// refused even to a cluster admin, with the rule named; the wildcard is
// still admitted (it never reaches the guards).
func TestGuardRulesCannotBeRelaxed(t *testing.T) {
	s := needSuite(t)
	createNamespace(context.Background(), t, s, "guard-relax", "internal")
	const msg = "[namespace-rule-actions] namespace guard-relax: annotation palisade.dev/rule-actions sets guard rule reserved-key to warn; guard rules always deny: remove reserved-key=warn (only the labeling and NetworkPolicy rules can be relaxed)"
	res := kubectlAs(t, s, "admin", "", "annotate", "namespace", "guard-relax", "palisade.dev/rule-actions=reserved-key=warn")
	wantDenied(t, res, "namespaces.validate.palisade.dev", msg)

	res = kubectlAs(t, s, "admin", "", "annotate", "namespace", "guard-relax", "palisade.dev/rule-actions=*=warn,netpol-managed-readonly=dryrun")
	wantDenied(t, res, "namespaces.validate.palisade.dev",
		"[namespace-rule-actions] namespace guard-relax: annotation palisade.dev/rule-actions sets guard rule netpol-managed-readonly to dryrun; guard rules always deny: remove netpol-managed-readonly=dryrun (only the labeling and NetworkPolicy rules can be relaxed)")

	wantAdmitted(t, kubectlAs(t, s, "admin", "", "annotate", "namespace", "guard-relax", "palisade.dev/rule-actions=*=warn"))
	// Under "*=warn" a developer still cannot exempt the namespace.
	res = kubectlAs(t, s, "alice", "", "annotate", "namespace", "guard-relax", "palisade.dev/exempt=true")
	wantDenied(t, res, "namespaces.validate.palisade.dev",
		"[reserved-key] namespace guard-relax: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt (only Palisade and members of system:masters may set palisade.dev/ keys)")

	recs := decisionRecords(t, s)
	wantRecord(t, recs, "admin", "validate-namespaces", "guard-relax", audit.DecisionDenied, "namespace-rule-actions", msg)
}

// TestClassificationLoweredNeedsPrivilege: a developer cannot take a pci
// namespace to public (nor remove its classification); raising it is
// theirs; a privileged group may lower it.
func TestClassificationLoweredNeedsPrivilege(t *testing.T) {
	s := needSuite(t)
	createNamespace(context.Background(), t, s, "guard-pci", "pci")
	const msg = `[namespace-classification-lowered] namespace guard-pci: lowering label data-classification from "pci" to "public" lowers the namespace's data classification (public < internal < pci < hipaa): keep data-classification=pci (only members of system:masters may lower it)`
	res := kubectlAs(t, s, "alice", "", "label", "namespace", "guard-pci", "data-classification=public", "--overwrite")
	wantDenied(t, res, "namespaces.validate.palisade.dev", msg)

	wantAdmitted(t, kubectlAs(t, s, "alice", "", "label", "namespace", "guard-pci", "data-classification=hipaa", "--overwrite"))
	res = kubectlAs(t, s, "alice", "", "label", "namespace", "guard-pci", "data-classification=pci", "--overwrite")
	wantDenied(t, res, "namespaces.validate.palisade.dev",
		`[namespace-classification-lowered] namespace guard-pci: lowering label data-classification from "hipaa" to "pci" lowers the namespace's data classification (public < internal < pci < hipaa): keep data-classification=hipaa (only members of system:masters may lower it)`)

	wantAdmitted(t, kubectlAs(t, s, "admin", "", "label", "namespace", "guard-pci", "data-classification=public", "--overwrite"))
	res = kubectlAs(t, s, "alice", "", "get", "namespace", "guard-pci", "-o", "jsonpath={.metadata.labels.data-classification}")
	if res.Stdout != "public" {
		t.Errorf("classification after the admin's change = %q", res.Stdout)
	}

	recs := decisionRecords(t, s)
	wantRecord(t, recs, "alice", "validate-namespaces", "guard-pci", audit.DecisionDenied, "namespace-classification-lowered", msg)
}

// TestRelabelIntoAnotherTeamsPolicyNeedsPrivilege: team shop admits
// ingress from namespaces labelled partner=guard-shop. A developer who
// labels their own namespace so is refused, naming the policy; so is one
// creating a namespace that claims that label; a privileged group may.
func TestRelabelIntoAnotherTeamsPolicyNeedsPrivilege(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	createNamespace(ctx, t, s, "guard-shop", "pci")
	createNamespace(ctx, t, s, "guard-web", "public")
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-partners", Namespace: "guard-shop"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"partner": "guard-shop"}},
			}}}},
		},
	}
	if err := s.admin.Create(ctx, np); err != nil {
		t.Fatal(err)
	}
	const msg = "[namespace-selected-by-policy] namespace guard-web: the label change makes it match spec.ingress[0].from[0].namespaceSelector of networkpolicy guard-shop/allow-partners, which decides access by namespace labels: keep the labels that policy selects on (only members of system:masters may change them; the owners of namespace guard-shop decide whom their policy admits)"
	res := kubectlAs(t, s, "alice", "", "label", "namespace", "guard-web", "partner=guard-shop")
	wantDenied(t, res, "namespaces.validate.palisade.dev", msg)

	res = kubectlAs(t, s, "alice", `
apiVersion: v1
kind: Namespace
metadata:
  name: guard-squatter
  labels: {owner: team-x, env: dev, data-classification: public, partner: guard-shop}
`, "create", "-f", "-")
	wantDenied(t, res, "namespaces.validate.palisade.dev",
		"[namespace-selected-by-policy] namespace guard-squatter: the label change makes it match spec.ingress[0].from[0].namespaceSelector of networkpolicy guard-shop/allow-partners, which decides access by namespace labels: keep the labels that policy selects on (only members of system:masters may change them; the owners of namespace guard-shop decide whom their policy admits)")

	// Labels no other namespace's policy reads stay the developer's.
	wantAdmitted(t, kubectlAs(t, s, "alice", "", "label", "namespace", "guard-web", "team=web"))
	wantAdmitted(t, kubectlAs(t, s, "admin", "", "label", "namespace", "guard-web", "partner=guard-shop"))
	// Leaving the selector withdraws access shop granted: the same rule.
	res = kubectlAs(t, s, "alice", "", "label", "namespace", "guard-web", "partner-")
	wantDenied(t, res, "namespaces.validate.palisade.dev",
		"[namespace-selected-by-policy] namespace guard-web: the label change makes it stop matching spec.ingress[0].from[0].namespaceSelector of networkpolicy guard-shop/allow-partners, which decides access by namespace labels: keep the labels that policy selects on (only members of system:masters may change them; the owners of namespace guard-shop decide whom their policy admits)")

	got := &corev1.Namespace{}
	if err := s.admin.Get(ctx, client.ObjectKey{Name: "guard-web"}, got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["partner"] != "guard-shop" {
		t.Errorf("labels after the denied removal: %v", got.Labels)
	}
	recs := decisionRecords(t, s)
	wantRecord(t, recs, "alice", "validate-namespaces", "guard-web", audit.DecisionDenied, "namespace-selected-by-policy", msg)
}

// TestGuardOverrideThatGotInIsIgnored: an exempt namespace is not judged,
// so a privileged user can leave "reserved-key=warn" on it; once it is
// governed again the override is still there, and ignored: a developer's
// reserved key is denied, not warned about.
func TestGuardOverrideThatGotInIsIgnored(t *testing.T) {
	s := needSuite(t)
	wantAdmitted(t, kubectlAs(t, s, "admin", `
apiVersion: v1
kind: Namespace
metadata:
  name: guard-earlier
  labels: {owner: team-x, env: dev, data-classification: internal}
  annotations: {palisade.dev/exempt: "true", palisade.dev/rule-actions: "reserved-key=warn,pod-tier=warn"}
`, "create", "-f", "-"))
	wantAdmitted(t, kubectlAs(t, s, "admin", "", "annotate", "namespace", "guard-earlier", "palisade.dev/exempt-"))
	res := kubectlAs(t, s, "alice", `
apiVersion: v1
kind: Pod
metadata: {name: sneaky, namespace: guard-earlier, labels: {app: api}, annotations: {palisade.dev/enforcement: audit}}
spec: {containers: [{name: c, image: registry.example/api:1}]}
`, "create", "-f", "-")
	// pod-tier=warn still relaxes the labeling rule: only the guard is held.
	wantDenied(t, res, "pods.validate.palisade.dev",
		"[reserved-key] pod guard-earlier/sneaky: annotation palisade.dev/enforcement is reserved: remove annotation palisade.dev/enforcement (only Palisade and members of system:masters may set palisade.dev/ keys)")
	if !strings.Contains(res.Stderr, "Warning: [pod-tier] pod guard-earlier/sneaky: missing label tier") {
		t.Errorf("the labeling rule's warn override no longer applies:\n%s", res.Stderr)
	}
}
