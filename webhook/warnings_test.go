package webhook_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/audit"
	"github.com/palisade-dev/palisade/rules"
)

const egressOnly443 = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-open, namespace: NS}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 443}]}]
`

// TestNoDNSWarningWhenTheBaselineAllowsDNS: in a governed namespace the
// baseline palisade-allow-dns lets every pod reach DNS, so a policy that
// isolates egress without DNS of its own gets no DNS warning (policies add
// up); its other warning still comes.
func TestNoDNSWarningWhenTheBaselineAllowsDNS(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	createNamespace(ctx, t, s, "dns-web", "public")
	key := client.ObjectKey{Namespace: "dns-web", Name: rules.PolicyAllowDNS}
	eventually(t, "baseline DNS policy", func() bool { return s.admin.Get(ctx, key, &networkingv1.NetworkPolicy{}) == nil })

	res := kubectlAs(t, s, "alice", strings.ReplaceAll(egressOnly443, "NS", "dns-web"), "create", "-f", "-")
	wantAdmitted(t, res)
	const open = `Warning: [netpol-open-cidr] networkpolicy dns-web/egress-open: spec.egress[0].to[0].ipBlock.cidr "0.0.0.0/0" matches every address: name the address ranges the pods need`
	if strings.TrimSpace(res.Stderr) != open {
		t.Errorf("stderr:\n%s\nwant exactly:\n%s", res.Stderr, open)
	}
	for _, r := range decisionRecords(t, s) {
		if r.Namespace == "dns-web" && r.Name == "egress-open" && r.Webhook == "validate-networkpolicies" {
			if r.Decision != audit.DecisionWarned || len(r.Rules) != 1 || r.Rules[0].RuleID != rules.RuleOpenCIDR {
				t.Errorf("record: %+v", r)
			}
			return
		}
	}
	t.Error("no decision record for networkpolicy dns-web/egress-open")
}

// TestDNSWarningWhenNothingAllowsDNS: in a namespace without the baseline
// (palisade-system: the suite's webhook leaves its own namespace alone,
// while the second, custom-rules webhook judges it like any other), the
// same policy is warned about; once another policy lets the same pods
// reach DNS, a further one is not.
func TestDNSWarningWhenNothingAllowsDNS(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	const ns = "palisade-system"
	// The labels that put the namespace under the second webhook (and
	// meet the standard, which it now judges), set before that webhook
	// exists and removed after it is gone.
	labels := map[string]string{customRulesLabel: "on", "owner": "palisade", "env": "prod", "data-classification": "internal"}
	relabel := func(add bool) {
		got := &corev1.Namespace{}
		if err := s.admin.Get(ctx, client.ObjectKey{Name: ns}, got); err != nil {
			t.Fatal(err)
		}
		if got.Labels == nil {
			got.Labels = map[string]string{}
		}
		for k, v := range labels {
			if add {
				got.Labels[k] = v
			} else {
				delete(got.Labels, k)
			}
		}
		if err := s.admin.Update(ctx, got); err != nil {
			t.Errorf("relabel namespace %s: %v", ns, err)
		}
	}
	t.Cleanup(func() { relabel(false) })
	relabel(true)
	h := startCustomRulesWebhook(t, s, "palisade-custom")
	created := []string{"egress-open", "dns-for-all", "egress-open-2"}
	t.Cleanup(func() {
		for _, name := range created {
			_ = s.admin.Delete(context.Background(), &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
		}
	})
	policies := h.names["networkpolicies.validate.palisade.dev"]
	const dnsWarning = "Warning: [netpol-egress-without-dns] networkpolicy palisade-system/egress-open: isolates egress and allows no DNS (UDP/TCP port 53), nor does any other policy in namespace palisade-system selecting the same pods, so they cannot resolve names: add an egress rule to namespace kube-system pods k8s-app=kube-dns on UDP and TCP port 53"
	var res = kubectlAs(t, s, "alice", strings.ReplaceAll(egressOnly443, "NS", ns), "create", "-f", "-")
	for i := 0; res.Exit == 0 && !strings.Contains(res.Stderr, "Warning:") && i < 50; i++ {
		// The API server may not call the new configuration yet.
		kubectlAs(t, s, "admin", "", "delete", "networkpolicy", "-n", ns, "egress-open")
		res = kubectlAs(t, s, "alice", strings.ReplaceAll(egressOnly443, "NS", ns), "create", "-f", "-")
	}
	wantAdmitted(t, res)
	if !strings.Contains(res.Stderr, dnsWarning+"\n") {
		t.Errorf("stderr lacks the DNS warning (from %s):\n%s\nwant:\n%s", policies, res.Stderr, dnsWarning)
	}
	wantRecord(t, customRecords(t, h), "alice", "validate-networkpolicies", "egress-open", audit.DecisionWarned, rules.RuleEgressWithoutDNS,
		strings.TrimPrefix(dnsWarning, "Warning: "))

	wantAdmitted(t, kubectlAs(t, s, "alice", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns-for-all, namespace: palisade-system}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}], ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]
`, "create", "-f", "-"))
	second := strings.ReplaceAll(strings.ReplaceAll(egressOnly443, "NS", ns), "egress-open", "egress-open-2")
	res = kubectlAs(t, s, "alice", second, "create", "-f", "-")
	wantAdmitted(t, res)
	if strings.Contains(res.Stderr, "[netpol-egress-without-dns]") {
		t.Errorf("DNS warning although dns-for-all allows DNS to every pod:\n%s", res.Stderr)
	}
}

// TestDeniedNamespaceEventInReleaseNamespace: the Event of a denied
// namespace creation cannot live in that namespace (it does not exist);
// it is in Palisade's own namespace, naming the namespace.
func TestDeniedNamespaceEventInReleaseNamespace(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	res := kubectlAs(t, s, "alice", `
apiVersion: v1
kind: Namespace
metadata: {name: ev-denied-ns, labels: {owner: team-x, env: qa, data-classification: public}}
`, "create", "-f", "-")
	const msg = `[ns-env] namespace ev-denied-ns: label env="qa" is not allowed: set env to one of: dev, staging, prod`
	wantDenied(t, res, "namespaces.validate.palisade.dev", msg)
	var found *eventsv1.Event
	eventually(t, "denial event in palisade-system", func() bool {
		var list eventsv1.EventList
		if err := s.admin.List(ctx, &list, client.InNamespace("palisade-system")); err != nil {
			return false
		}
		for i, e := range list.Items {
			if e.Reason == "AdmissionDenied" && e.Regarding.Kind == "Namespace" && e.Regarding.Name == "ev-denied-ns" {
				found = &list.Items[i]
				return true
			}
		}
		return false
	})
	if want := "denied create by alice: " + msg; found.Note != want || found.Type != corev1.EventTypeWarning || found.Action != "CREATE" {
		t.Errorf("event: type %s action %s note %q, want note %q", found.Type, found.Action, found.Note, want)
	}
	wantRecord(t, decisionRecords(t, s), "alice", "validate-namespaces", "ev-denied-ns", audit.DecisionDenied, "ns-env", msg)
}
