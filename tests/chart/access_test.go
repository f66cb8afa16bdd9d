package chart_test

import (
	"context"
	"fmt"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// call is one API request a component makes (or must not be able to make).
type call struct {
	verb, group, resource, subresource, namespace, name string
	why                                                 string // where in the code, or why it must be refused
}

func (c call) String() string {
	r := c.resource
	if c.group != "" {
		r += "." + c.group
	}
	if c.subresource != "" {
		r += "/" + c.subresource
	}
	where := "cluster-wide"
	if c.namespace != "" {
		where = "in " + c.namespace
	}
	if c.name != "" {
		r += " " + c.name
	}
	return fmt.Sprintf("%s %s %s (%s)", c.verb, r, where, c.why)
}

// A governed namespace the components act in.
const appNS = "shop"

// webhookCalls are every request `palisade webhook` makes, whatever the
// certificate mode (webhook.ClusterRoleRules documents them):
//   - namespaces: the cache (list/watch) and the API reader (get) — every
//     verdict depends on the namespace's labels;
//   - networkpolicies: the baseline reconciler's cache (list/watch of the
//     managed ones, cluster-wide), get through the API reader, and
//     create/update/patch/delete when restoring a baseline;
//   - events.k8s.io events: the event recorder (create, patch to aggregate).
func webhookCalls() []call {
	var out []call
	for _, v := range []string{"list", "watch"} {
		out = append(out, call{v, "", "namespaces", "", "", "", "namespace cache"})
		out = append(out, call{v, "networking.k8s.io", "networkpolicies", "", "", "", "managed-policy cache, all namespaces"})
	}
	out = append(out, call{"get", "", "namespaces", "", "", appNS, "API reader: namespace labels"})
	for _, v := range []string{"get", "create", "update", "patch", "delete"} {
		out = append(out, call{v, "networking.k8s.io", "networkpolicies", "", appNS, "palisade-default-deny", "baseline reconciler"})
	}
	for _, v := range []string{"create", "patch"} {
		out = append(out, call{v, "events.k8s.io", "events", "", appNS, "", "denial events"})
	}
	return out
}

// certCalls are the requests of the certificate code in each mode
// (certs.RoleRules, certs.ClusterRoleRules, certs.ProvidedRoleRules).
func certCalls(mode, ns, secret, service string) []call {
	secretCall := func(verb, why string) call { return call{verb, "", "secrets", "", ns, secret, why} }
	switch mode {
	case "self-managed":
		out := []call{{"create", "", "secrets", "", ns, "", "first start: create the certificate Secret"}}
		for _, v := range []string{"get", "list", "watch", "update", "delete"} {
			out = append(out, secretCall(v, "self-managed certificate Secret"))
		}
		out = append(out, call{"get", "", "services", "", ns, service, "the Secret's owner (uninstall deletes it)"})
		for _, v := range []string{"get", "list", "watch", "update"} {
			out = append(out,
				call{v, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "palisade-mutate", "caBundle injection"},
				call{v, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "palisade-validate", "caBundle injection"})
		}
		return out
	default:
		return []call{secretCall("get", "read the provided Secret"), secretCall("list", "follow it by name"), secretCall("watch", "follow it by name")}
	}
}

// webhookMustNot is a sample of what the webhook must never be able to do.
func webhookMustNot(mode, ns, secret, service string) []call {
	out := []call{
		{"get", "", "secrets", "", "kube-system", secret, "Secrets outside the release namespace"},
		{"get", "", "secrets", "", appNS, secret, "Secrets outside the release namespace"},
		{"list", "", "secrets", "", "", "", "Secrets cluster-wide"},
		{"list", "", "secrets", "", ns, "", "every Secret of its own namespace"},
		{"get", "", "secrets", "", ns, "some-other-secret", "another Secret of its own namespace"},
		{"create", "", "secrets", "", appNS, "", "Secrets elsewhere"},
		{"create", "", "pods", "exec", appNS, "web", "exec into pods"},
		{"create", "", "pods", "", appNS, "", "run pods"},
		{"delete", "", "namespaces", "", "", appNS, "delete namespaces"},
		{"update", "", "namespaces", "", "", appNS, "relabel namespaces"},
		{"deletecollection", "networking.k8s.io", "networkpolicies", "", appNS, "", "delete all policies at once"},
		{"delete", "", "pods", "", "", "", "cluster-wide deletes"},
		{"update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "someone-elses", "other webhook configurations"},
		{"create", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "", "new webhook configurations"},
		{"delete", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "palisade-validate", "remove its own fail-closed webhook"},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", "", "grant itself more"},
		{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", "", "grant itself more"},
		{"patch", "", "nodes", "", "", "node1", "touch nodes"},
		{"get", "", "configmaps", "", "kube-system", "", "read other configuration"},
	}
	out = append(out,
		call{"get", "", "services", "", ns, "some-other-service", "other Services"},
		call{"list", "", "services", "", ns, "", "every Service of its own namespace"},
		call{"update", "", "services", "", ns, service, "write its Service"},
	)
	if mode != "self-managed" {
		// The Secret is cert-manager's or the user's: read-only.
		out = append(out, call{"get", "", "services", "", ns, service, "no owner to set in this mode"})
		out = append(out,
			call{"create", "", "secrets", "", ns, "", "provided Secret is not its to write"},
			call{"update", "", "secrets", "", ns, secret, "provided Secret is not its to write"},
			call{"update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "palisade-validate", "the CA is cainjector's or the user's"},
		)
	}
	return out
}

// enforcerCalls are every request `palisade enforcer` makes: its cache
// lists and watches Pods, Namespaces and NetworkPolicies cluster-wide and
// its own Node (for its addresses; RBAC cannot narrow this to one node);
// stopping, it gets its own DaemonSet ds in the release namespace ns
// (gone means an uninstall: enforcer/uninstall.go).
func enforcerCalls(ns, ds string) []call {
	var out []call
	for _, v := range []string{"get", "list", "watch"} {
		out = append(out,
			call{v, "", "pods", "", "", "", "pod cache, all namespaces"},
			call{v, "", "namespaces", "", "", "", "namespace cache"},
			call{v, "networking.k8s.io", "networkpolicies", "", "", "", "policy cache, all namespaces"},
			call{v, "", "nodes", "", "", "node1", "its node's addresses"},
		)
	}
	out = append(out,
		call{"create", "events.k8s.io", "events", "", appNS, "", "sync failures as events"},
		// A Node is cluster-scoped: its Events live in the default
		// namespace; a repeated one is patched into a series.
		call{"create", "events.k8s.io", "events", "", "default", "", "failed syncs and filling maps as the Node's Events"},
		call{"patch", "events.k8s.io", "events", "", "default", "", "a repeated Node Event counted in its series"},
		call{"get", "apps", "daemonsets", "", ns, ds, "its own DaemonSet: uninstall or restart"},
	)
	return out
}

func enforcerMustNot(ns, ds string) []call {
	return []call{
		{"get", "apps", "daemonsets", "", ns, "other", "only its own DaemonSet"},
		{"get", "apps", "daemonsets", "", appNS, ds, "only in the release namespace"},
		{"list", "apps", "daemonsets", "", ns, "", "no listing DaemonSets"},
		{"watch", "apps", "daemonsets", "", ns, "", "no watching DaemonSets"},
		{"update", "apps", "daemonsets", "", ns, ds, "never writes its DaemonSet"},
		{"patch", "apps", "daemonsets", "", ns, ds, "never writes its DaemonSet"},
		{"delete", "apps", "daemonsets", "", ns, ds, "never deletes its DaemonSet"},
		{"create", "networking.k8s.io", "networkpolicies", "", appNS, "", "it enforces policies, never writes them"},
		{"delete", "networking.k8s.io", "networkpolicies", "", appNS, "x", "it enforces policies, never writes them"},
		{"get", "", "secrets", "", ns, "palisade-webhook-tls", "no Secrets at all"},
		{"list", "", "secrets", "", "", "", "no Secrets at all"},
		{"create", "", "pods", "exec", appNS, "web", "exec into pods"},
		{"delete", "", "pods", "", appNS, "web", "delete pods"},
		{"patch", "", "pods", "", appNS, "web", "write pods"},
		{"update", "", "nodes", "", "", "node1", "write nodes"},
		{"update", "", "namespaces", "", "", appNS, "relabel namespaces"},
		{"list", "", "configmaps", "", "", "", "read other configuration"},
		{"update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "palisade-validate", "touch admission"},
	}
}

// TestLeastPrivilege installs each certificate mode and asks the real API
// server (SubjectAccessReview, as the chart's ServiceAccounts) about every
// call the webhook and the enforcer make — allowed — and a sample of calls
// they must not make — denied.
func TestLeastPrivilege(t *testing.T) {
	ctx, c := needAPIServer(t)
	for _, tc := range installCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, tc.rel, tc.vals)
			install(ctx, t, c, tc.rel.namespace, r)
			ns := tc.rel.namespace
			mode, _ := nestedString(tc.vals, "certs", "mode")
			if mode == "" {
				mode = "self-managed"
			}
			secret, _ := nestedString(tc.vals, "certs", "secretName")
			if secret == "" {
				secret = r.oneComponent(t, "ServiceAccount", "webhook").GetName() + "-tls"
			}
			webhookSA := r.oneComponent(t, "ServiceAccount", "webhook").GetName()
			enforcerSA := r.oneComponent(t, "ServiceAccount", "enforcer").GetName()

			check := func(sa string, calls []call, want bool) {
				for _, cl := range calls {
					allowed, reason := review(ctx, t, c, ns, sa, cl)
					if allowed != want {
						t.Errorf("%s: %s: allowed=%t, want %t (%s)", sa, cl, allowed, want, reason)
					}
				}
			}
			// The Service is named like the ServiceAccount (<fullname>-webhook).
			check(webhookSA, append(webhookCalls(), certCalls(mode, ns, secret, webhookSA)...), true)
			check(webhookSA, webhookMustNot(mode, ns, secret, webhookSA), false)
			enforcerDS := r.oneComponent(t, "DaemonSet", "enforcer").GetName()
			check(enforcerSA, enforcerCalls(ns, enforcerDS), true)
			check(enforcerSA, enforcerMustNot(ns, enforcerDS), false)
		})
	}
}

// review asks the API server whether the ServiceAccount may make call.
func review(ctx context.Context, t *testing.T, c client.Client, ns, sa string, cl call) (bool, string) {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:" + ns + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: cl.verb, Group: cl.group, Resource: cl.resource, Subresource: cl.subresource, Namespace: cl.namespace, Name: cl.name,
		},
	}}
	if err := c.Create(ctx, sar); err != nil {
		t.Fatalf("SubjectAccessReview %s: %v", cl, err)
	}
	return sar.Status.Allowed, sar.Status.Reason + sar.Status.EvaluationError
}

func nestedString(m map[string]any, path ...string) (string, bool) {
	for i, p := range path {
		v, ok := m[p]
		if !ok {
			return "", false
		}
		if i == len(path)-1 {
			s, ok := v.(string)
			return s, ok
		}
		if m, ok = v.(map[string]any); !ok {
			return "", false
		}
	}
	return "", false
}
