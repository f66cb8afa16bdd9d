package webhook_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/audit"
	"github.com/palisade-dev/palisade/webhook"
)

// TestSubresourcesAreRouted pins which subresources each configuration
// sends, with and without custom rules, and which updates a custom rule
// gets: all of a pod's and workload's, a status write's only when it
// changes metadata.
func TestSubresourcesAreRouted(t *testing.T) {
	for _, custom := range []bool{false, true} {
		m, v := webhook.WebhookConfigurations(webhook.ConfigurationOptions{CustomRules: custom})
		resources := map[string][]string{}
		conds := map[string][]admissionregistrationv1.MatchCondition{}
		for _, w := range m.Webhooks {
			for _, r := range w.Rules {
				resources[w.Name] = append(resources[w.Name], r.Resources...)
			}
		}
		for _, w := range v.Webhooks {
			for _, r := range w.Rules {
				resources[w.Name] = append(resources[w.Name], r.Resources...)
			}
			conds[w.Name] = w.MatchConditions
		}
		for name, want := range map[string][]string{
			"namespaces.mutate.palisade.dev":   {"namespaces", "namespaces/status"},
			"namespaces.validate.palisade.dev": {"namespaces", "namespaces/status"},
			"pods.validate.palisade.dev":       {"pods", "pods/status", "pods/ephemeralcontainers"},
		} {
			if !slices.Equal(resources[name], want) {
				t.Errorf("custom rules %v: %s routes %v, want %v", custom, name, resources[name], want)
			}
		}
		podCond := conds["pods.validate.palisade.dev"]
		switch {
		case !custom && (len(podCond) != 1 || podCond[0].Name != "create-or-metadata-change"):
			t.Errorf("without custom rules, pods: %+v", podCond)
		case custom && (len(podCond) != 1 || podCond[0].Name != "not-status-or-metadata-change"):
			t.Errorf("with custom rules, pods: %+v", podCond)
		case custom && len(conds["workloads.validate.palisade.dev"]) != 0:
			t.Errorf("with custom rules, workloads still filtered: %+v", conds["workloads.validate.palisade.dev"])
		case !custom && len(conds["workloads.validate.palisade.dev"]) != 1:
			t.Errorf("without custom rules, workloads: %+v", conds["workloads.validate.palisade.dev"])
		}
	}
}

// TestLabelsThroughStatusAreJudged: the API server keeps only the spec of
// a status write, so pods/status and namespaces/status can rewrite labels
// and annotations. Through them a developer tries a tier the standard
// forbids, an exemption and a classification downgrade: each is denied
// with the same message as through the object itself, and recorded with
// the subresource.
func TestLabelsThroughStatusAreJudged(t *testing.T) {
	s := needSuite(t)
	grantSubresources(t, s)
	ctx := context.Background()
	createNamespace(ctx, t, s, "sub-status", "pci")
	wantAdmitted(t, kubectlAs(t, s, "alice", `
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: sub-status, labels: {app: api, tier: backend}, annotations: {team: api}}
spec: {containers: [{name: c, image: registry.example/api:1}]}
`, "create", "-f", "-"))

	const tierMsg = `[pod-tier] pod sub-status/api: label tier="cache" is not allowed: set tier to one of: frontend, backend, data`
	res := kubectlAs(t, s, "alice", "", "patch", "pod", "api", "-n", "sub-status", "--subresource=status", "--type=merge", "-p", `{"metadata":{"labels":{"tier":"cache"}}}`)
	wantDenied(t, res, "pods.validate.palisade.dev", tierMsg)
	res = kubectlAs(t, s, "alice", "", "patch", "pod", "api", "-n", "sub-status", "--subresource=status", "--type=merge", "-p", `{"metadata":{"annotations":{"palisade.dev/enforcement":"audit"}}}`)
	wantDenied(t, res, "pods.validate.palisade.dev",
		"[reserved-key] pod sub-status/api: annotation palisade.dev/enforcement is reserved: remove annotation palisade.dev/enforcement (only Palisade and members of system:masters may set palisade.dev/ keys)")

	const exemptMsg = "[reserved-key] namespace sub-status: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt (only Palisade and members of system:masters may set palisade.dev/ keys)"
	res = kubectlAs(t, s, "alice", "", "patch", "namespace", "sub-status", "--subresource=status", "--type=merge", "-p", `{"metadata":{"annotations":{"palisade.dev/exempt":"true"}}}`)
	wantDenied(t, res, "namespaces.validate.palisade.dev", exemptMsg)
	res = kubectlAs(t, s, "alice", "", "patch", "namespace", "sub-status", "--subresource=status", "--type=merge", "-p", `{"metadata":{"labels":{"data-classification":"public"}}}`)
	wantDenied(t, res, "namespaces.validate.palisade.dev",
		`[namespace-classification-lowered] namespace sub-status: lowering label data-classification from "pci" to "public" lowers the namespace's data classification (public < internal < pci < hipaa): keep data-classification=pci (only members of system:masters may lower it)`)

	// A compliant label change through status passes: it is judged, not banned.
	wantAdmitted(t, kubectlAs(t, s, "alice", "", "patch", "pod", "api", "-n", "sub-status", "--subresource=status", "--type=merge", "-p", `{"metadata":{"labels":{"tier":"data"}}}`))

	pod := &corev1.Pod{}
	if err := s.admin.Get(ctx, client.ObjectKey{Namespace: "sub-status", Name: "api"}, pod); err != nil {
		t.Fatal(err)
	}
	if pod.Labels["tier"] != "data" || pod.Annotations["palisade.dev/enforcement"] != "" {
		t.Errorf("pod metadata after the status writes: %v %v", pod.Labels, pod.Annotations)
	}
	ns := &corev1.Namespace{}
	if err := s.admin.Get(ctx, client.ObjectKey{Name: "sub-status"}, ns); err != nil {
		t.Fatal(err)
	}
	if ns.Annotations["palisade.dev/exempt"] != "" || ns.Labels["data-classification"] != "pci" {
		t.Errorf("namespace metadata after the status writes: %v %v", ns.Labels, ns.Annotations)
	}

	var tierRec, exemptRec bool
	for _, r := range decisionRecords(t, s) {
		if r.Decision != audit.DecisionDenied || !strings.HasPrefix(r.Message, "subresource status") || len(r.Rules) != 1 {
			continue
		}
		tierRec = tierRec || (r.Webhook == "validate-pods" && r.Name == "api" && r.Rules[0].Message == tierMsg)
		exemptRec = exemptRec || (r.Webhook == "validate-namespaces" && r.Name == "sub-status" && r.Rules[0].Message == exemptMsg)
	}
	if !tierRec || !exemptRec {
		t.Errorf("denied status writes recorded with their subresource: pod %v, namespace %v", tierRec, exemptRec)
	}
}
