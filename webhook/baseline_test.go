package webhook_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/rules"
)

// managedPolicies returns the names of the managed policies in ns.
func managedPolicies(ctx context.Context, t *testing.T, c client.Client, ns string) []string {
	t.Helper()
	var list networkingv1.NetworkPolicyList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{rules.LabelManagedBy: rules.ManagedByValue}); err != nil {
		t.Fatalf("list policies in %s: %v", ns, err)
	}
	var names []string
	for _, np := range list.Items {
		names = append(names, np.Name)
	}
	slices.Sort(names)
	return names
}

// eventually polls cond every 50ms for up to 10s and returns how long it took.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within 10s", what)
	return 0
}

func createNamespace(ctx context.Context, t *testing.T, s *suite, name, classification string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"owner": "team-x", "env": "dev", "data-classification": classification}}}
	if err := s.admin.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

func TestBaselinePoliciesPerProfile(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	createNamespace(ctx, t, s, "bl-pci", "pci")
	createNamespace(ctx, t, s, "bl-public", "public")
	restricted := []string{rules.PolicyAllowDNS, rules.PolicyDefaultDeny}
	open := []string{rules.PolicyAllowDNS, rules.PolicyDefaultDeny, rules.PolicyAllowSameNamespace}
	slices.Sort(open)
	for ns, want := range map[string][]string{"bl-pci": restricted, "bl-public": open, "legacy": open} {
		eventually(t, "baseline of "+ns, func() bool { return slices.Equal(managedPolicies(ctx, t, s.admin, ns), want) })
	}
	for _, ns := range []string{"kube-system", "palisade-system", "default"} {
		if got := managedPolicies(ctx, t, s.admin, ns); len(got) != 0 && ns != "default" {
			t.Errorf("system namespace %s got baseline policies %v", ns, got)
		}
	}
	// The default-deny isolates both directions for every pod.
	np := &networkingv1.NetworkPolicy{}
	if err := s.admin.Get(ctx, client.ObjectKey{Namespace: "bl-pci", Name: rules.PolicyDefaultDeny}, np); err != nil {
		t.Fatal(err)
	}
	if len(np.Spec.PodSelector.MatchLabels)+len(np.Spec.PodSelector.MatchExpressions) != 0 || len(np.Spec.Ingress)+len(np.Spec.Egress) != 0 ||
		!slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
		t.Errorf("default-deny spec = %+v", np.Spec)
	}
	if np.Annotations[rules.AnnotationProfile] != "restricted" {
		t.Errorf("default-deny profile annotation = %q, want restricted", np.Annotations[rules.AnnotationProfile])
	}
}

func TestBaselineFollowsClassificationChange(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	createNamespace(ctx, t, s, "bl-reclass", "public")
	eventually(t, "open baseline", func() bool { return len(managedPolicies(ctx, t, s.admin, "bl-reclass")) == 3 })
	ns := &corev1.Namespace{}
	if err := s.admin.Get(ctx, client.ObjectKey{Name: "bl-reclass"}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels["data-classification"] = "hipaa"
	if err := s.admin.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	eventually(t, "restricted baseline after reclassification", func() bool {
		return slices.Equal(managedPolicies(ctx, t, s.admin, "bl-reclass"), []string{rules.PolicyAllowDNS, rules.PolicyDefaultDeny})
	})
	if err := s.admin.Get(ctx, client.ObjectKey{Name: "bl-reclass"}, ns); err != nil {
		t.Fatal(err)
	}
	if got := ns.Annotations[rules.AnnotationProfile]; got != "restricted" {
		t.Errorf("profile annotation after reclassification = %q, want restricted", got)
	}
}

func TestBaselineRestoredAfterDeletionAndEdit(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	createNamespace(ctx, t, s, "bl-restore", "internal")
	key := client.ObjectKey{Namespace: "bl-restore", Name: rules.PolicyDefaultDeny}
	eventually(t, "baseline", func() bool { return s.admin.Get(ctx, key, &networkingv1.NetworkPolicy{}) == nil })

	// Deleted by the only identity allowed to (the webhook's own), as
	// when the webhook was down: it comes back.
	np := &networkingv1.NetworkPolicy{}
	if err := s.admin.Get(ctx, key, np); err != nil {
		t.Fatal(err)
	}
	oldUID := np.UID
	if err := s.asWebhook.Delete(ctx, np); err != nil {
		t.Fatalf("delete as the webhook: %v", err)
	}
	took := eventually(t, "default-deny restored after deletion", func() bool {
		got := &networkingv1.NetworkPolicy{}
		return s.admin.Get(ctx, key, got) == nil && got.UID != oldUID
	})
	t.Logf("restored %s %v after deletion", key, took.Round(time.Millisecond))

	// Edited to isolate ingress only: restored to both directions.
	if err := s.admin.Get(ctx, key, np); err != nil {
		t.Fatal(err)
	}
	np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	if err := s.asWebhook.Update(ctx, np); err != nil {
		t.Fatalf("edit as the webhook: %v", err)
	}
	took = eventually(t, "default-deny restored after edit", func() bool {
		got := &networkingv1.NetworkPolicy{}
		return s.admin.Get(ctx, key, got) == nil && len(got.Spec.PolicyTypes) == 2
	})
	t.Logf("restored %s %v after an edit", key, took.Round(time.Millisecond))

	// Its managed label removed: the policy is taken back.
	if err := s.admin.Get(ctx, key, np); err != nil {
		t.Fatal(err)
	}
	delete(np.Labels, rules.LabelManagedBy)
	if err := s.asWebhook.Update(ctx, np); err != nil {
		t.Fatalf("unlabel as the webhook: %v", err)
	}
	eventually(t, "managed label restored", func() bool {
		got := &networkingv1.NetworkPolicy{}
		return s.admin.Get(ctx, key, got) == nil && rules.IsManaged(got)
	})
}

func TestBaselineGuardCannotBeRelaxed(t *testing.T) {
	// netpol-managed-readonly is a guard rule: an override naming it is
	// refused even to a privileged user, so a developer's delete of a
	// baseline policy stays denied.
	s := needSuite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        "bl-warn",
		Labels:      map[string]string{"owner": "team-x", "env": "dev", "data-classification": "internal"},
		Annotations: map[string]string{rules.AnnotationRuleActions: rules.RuleManagedReadonly + "=warn"},
	}}
	err := s.admin.Create(ctx, ns)
	if want := "[namespace-rule-actions] namespace bl-warn: annotation palisade.dev/rule-actions sets guard rule netpol-managed-readonly to warn; guard rules always deny"; err == nil || !contains(err.Error(), want) {
		t.Fatalf("create with %s=warn: %v, want a denial containing %q", rules.RuleManagedReadonly, err, want)
	}
	createNamespace(ctx, t, s, "bl-warn", "internal")
	key := client.ObjectKey{Namespace: "bl-warn", Name: rules.PolicyAllowDNS}
	eventually(t, "baseline", func() bool { return s.admin.Get(ctx, key, &networkingv1.NetworkPolicy{}) == nil })
	res, err := s.kubectl["alice"].Run(ctx, "", "delete", "networkpolicy", "-n", "bl-warn", rules.PolicyAllowDNS)
	if err != nil {
		t.Fatal(err)
	}
	want := "[netpol-managed-readonly] networkpolicy bl-warn/palisade-allow-dns: baseline policy is managed by Palisade and cannot be deleted"
	if res.Exit == 0 || !contains(res.Stderr, want) {
		t.Errorf("delete: exit %d, stderr lacks %q:\n%s", res.Exit, want, res.Stderr)
	}
}

// TestNoPodBeforeItsBaseline creates a namespace and a pod in one kubectl
// call, racing the reconciler: whichever side creates the baseline, it
// must be in etcd before the pod. (resourceVersions are etcd revisions:
// a smaller one was written earlier.)
func TestNoPodBeforeItsBaseline(t *testing.T) {
	s := needSuite(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 5 {
		name := "race-" + string(rune('a'+i))
		res, err := s.kubectl["alice"].Run(ctx, `
apiVersion: v1
kind: Namespace
metadata: {name: `+name+`, labels: {owner: team-r, env: dev, data-classification: pci}}
---
apiVersion: v1
kind: Pod
metadata: {name: first, namespace: `+name+`, labels: {app: first, tier: backend}}
spec: {containers: [{name: c, image: registry.example/x:1}]}
`, "create", "-f", "-")
		if err != nil {
			t.Fatal(err)
		}
		if res.Exit != 0 {
			t.Fatalf("create %s: exit %d: %s", name, res.Exit, res.Stderr)
		}
		pod := &corev1.Pod{}
		if err := s.admin.Get(ctx, client.ObjectKey{Namespace: name, Name: "first"}, pod); err != nil {
			t.Fatal(err)
		}
		for _, pol := range []string{rules.PolicyDefaultDeny, rules.PolicyAllowDNS} {
			np := &networkingv1.NetworkPolicy{}
			if err := s.admin.Get(ctx, client.ObjectKey{Namespace: name, Name: pol}, np); err != nil {
				t.Fatalf("%s/%s: %v", name, pol, err)
			}
			if rv(t, np.ResourceVersion) >= rv(t, pod.ResourceVersion) {
				t.Errorf("%s/%s written at revision %s, after the pod (%s)", name, pol, np.ResourceVersion, pod.ResourceVersion)
			}
		}
	}
}

func rv(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", s, err)
	}
	return n
}
