package testenv

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/webhook"
)

// WebhookServiceAccount is the user the webhook acts as in tests and the demo.
const WebhookServiceAccount = "system:serviceaccount:palisade-system:palisade-webhook"

// The monitoring namespace of Scrapers: Scraper may get /metrics,
// NotAScraper may not.
const (
	MonitoringNamespace = "monitoring"
	Scraper             = "prometheus"
	NotAScraper         = "grafana"
)

// MetricsAuthRules are what a component serving authenticated metrics
// needs: review scrapers' tokens and their access to /metrics.
func MetricsAuthRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	}
}

// RBAC returns palisade-system, the webhook's service account bound to
// exactly the rules the chart grants it (the metrics check's included),
// and a "developer" role for the
// group "developers". The built-in edit role is aggregated by
// kube-controller-manager, which envtest does not run, so a developer's
// rights are spelled out.
func RBAC() []client.Object {
	ref := func(name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name}
	}
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "palisade-system"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "palisade-webhook", Namespace: "palisade-system"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "palisade-webhook"}, Rules: webhook.ClusterRoleRules()},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "palisade-webhook"},
			RoleRef:    ref("palisade-webhook"),
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "palisade-webhook", Namespace: "palisade-system"}},
		},
		// The metrics check (chart: rbac-metrics.yaml): the webhook
		// reviews scrapers' tokens and their access to /metrics.
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "palisade-metrics-auth"}, Rules: MetricsAuthRules()},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "palisade-metrics-auth"},
			RoleRef:    ref("palisade-metrics-auth"),
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "palisade-webhook", Namespace: "palisade-system"}},
		},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "developer"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"pods", "services", "configmaps", "events"}, Verbs: []string{"*"}},
			{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"apps", "batch"}, Resources: []string{"*"}, Verbs: []string{"*"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"*"}},
		}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "developers"},
			RoleRef:    ref("developer"),
			Subjects:   []rbacv1.Subject{{Kind: "Group", Name: "developers", APIGroup: "rbac.authorization.k8s.io"}},
		},
	}
}

// Scrapers returns a monitoring namespace with two service accounts:
// Scraper, bound to get on /metrics (the chart's metrics-reader role), and
// NotAScraper, bound to nothing.
func Scrapers() []client.Object {
	return []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "palisade-metrics-reader"}, Rules: []rbacv1.PolicyRule{
			{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
		}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: MonitoringNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: Scraper, Namespace: MonitoringNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: NotAScraper, Namespace: MonitoringNamespace}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "palisade-metrics-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "palisade-metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: Scraper, Namespace: MonitoringNamespace}},
		},
	}
}
