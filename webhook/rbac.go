package webhook

import rbacv1 "k8s.io/api/rbac/v1"

// ClusterRoleRules is what the webhook needs cluster-wide, and no more:
// read namespaces (labels decide every verdict), write the baseline
// NetworkPolicies, and post Events on denials. The chart renders these
// rules; the tests run the webhook under them.
func ClusterRoleRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
}
