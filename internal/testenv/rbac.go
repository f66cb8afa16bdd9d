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

// RBAC returns palisade-system, the webhook's service account bound to
// exactly the rules the chart grants it, and a "developer" role for the
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
