package certs

import rbacv1 "k8s.io/api/rbac/v1"

// RoleRules is what a Manager needs in Palisade's namespace (a Role, not
// a ClusterRole: no Secret elsewhere is readable). create cannot be limited
// to a name in RBAC; everything else is. delete is for replacing a Secret
// of the wrong type, on the exact object read. get on the webhook Service
// is for the Secret's ownerReference (its UID).
func RoleRules(secretName, serviceName string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{secretName}, Verbs: []string{"get", "list", "watch", "update", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, ResourceNames: []string{serviceName}, Verbs: []string{"get"}},
	}
}

// ClusterRoleRules is what a Manager needs cluster-wide: read, watch and
// update the two named webhook configurations, no others. (list and watch
// by name work because Run selects them with metadata.name.)
func ClusterRoleRules(mutating, validating string) []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	if mutating != "" {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, ResourceNames: []string{mutating}, Verbs: []string{"get", "list", "watch", "update"}})
	}
	if validating != "" {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, ResourceNames: []string{validating}, Verbs: []string{"get", "list", "watch", "update"}})
	}
	return rules
}

// ProvidedRoleRules is what Provided needs: read and watch the user's
// Secret, nothing else.
func ProvidedRoleRules(secretName string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{secretName}, Verbs: []string{"get", "list", "watch"}},
	}
}
