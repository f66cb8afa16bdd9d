package webhook

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Admission paths served by the webhook server.
const (
	PathMutatePods            = "/mutate-pods"
	PathMutateNamespaces      = "/mutate-namespaces"
	PathValidatePods          = "/validate-pods"
	PathValidateNamespaces    = "/validate-namespaces"
	PathValidateWorkloads     = "/validate-workloads"
	PathValidateNetworkPolicy = "/validate-networkpolicies"
)

// Names of the webhook configuration objects.
const (
	MutatingConfigurationName   = "palisade-mutate"
	ValidatingConfigurationName = "palisade-validate"
)

// SystemNamespaces are never governed: blocking them can lock a cluster out.
var SystemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// ConfigurationOptions says where the API server reaches the webhook.
type ConfigurationOptions struct {
	// Namespace is Palisade's own namespace; it is excluded like the
	// system namespaces. Default "palisade-system".
	Namespace string
	// ServiceName is the webhook Service in Namespace. Default "palisade-webhook".
	ServiceName string
	// ServicePort defaults to 443.
	ServicePort int32
	// CABundle is the PEM CA the API server uses to verify the webhook.
	CABundle []byte
	// TimeoutSeconds defaults to 3.
	TimeoutSeconds int32
	// CustomRules says custom Gatekeeper rules are loaded (palisade
	// webhook --rules; the chart's customRules). A custom rule may judge
	// any field, so every UPDATE of a pod (its spec and ephemeral
	// containers included) and of a workload is sent, not only those
	// changing metadata. Default false.
	CustomRules bool
}

func (o *ConfigurationOptions) defaults() {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.ServiceName == "" {
		o.ServiceName = "palisade-webhook"
	}
	if o.ServicePort == 0 {
		o.ServicePort = 443
	}
	if o.TimeoutSeconds == 0 {
		o.TimeoutSeconds = 3
	}
}

// WebhookConfigurations returns the mutating and validating webhook
// configurations that route requests to this package's paths. Every
// webhook excludes the system namespaces and Palisade's own by name,
// fails closed (failurePolicy Fail), and declares sideEffects
// NoneOnDryRun: the pod path creates missing baseline policies, never on a
// dry run.
//
// The subresources that can change what is judged go through the same
// webhooks: pods/status and namespaces/status can rewrite labels and
// annotations (the API server keeps only the spec of a status write), and
// pods/ephemeralcontainers adds containers to a running pod's spec.
func WebhookConfigurations(o ConfigurationOptions) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	o.defaults()
	fail := admissionregistrationv1.Fail
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	equivalent := admissionregistrationv1.Equivalent
	never := admissionregistrationv1.NeverReinvocationPolicy
	selector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key:      "kubernetes.io/metadata.name",
		Operator: metav1.LabelSelectorOpNotIn,
		Values:   append(append([]string(nil), SystemNamespaces...), o.Namespace),
	}}}
	client := func(path string) admissionregistrationv1.WebhookClientConfig {
		p := path
		port := o.ServicePort
		return admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Namespace: o.Namespace, Name: o.ServiceName, Path: &p, Port: &port},
			CABundle: o.CABundle,
		}
	}
	rule := func(group, version string, resources []string, ops ...admissionregistrationv1.OperationType) admissionregistrationv1.RuleWithOperations {
		scope := admissionregistrationv1.AllScopes
		return admissionregistrationv1.RuleWithOperations{
			Operations: ops,
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources, Scope: &scope},
		}
	}
	create, update, del := admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete
	timeout := o.TimeoutSeconds
	versions := []string{"v1"}

	// Label-only UPDATEs are the only updates worth a call: status, spec
	// and finalizer updates are frequent and cannot change a verdict.
	// A side without the field counts as changed: a condition may only
	// ever cause extra calls, never skip a needed one.
	changed := func(f string) string {
		return "!has(object.metadata." + f + ") || !has(oldObject.metadata." + f + ") || object.metadata." + f + " != oldObject.metadata." + f
	}
	metadataChanged := changed("labels") + " || " + changed("annotations")
	labelsChanged := []admissionregistrationv1.MatchCondition{{
		Name:       "create-or-metadata-change",
		Expression: "request.operation != 'UPDATE' || " + metadataChanged,
	}}
	templateChanged := []admissionregistrationv1.MatchCondition{{
		Name: "create-or-template-metadata-change",
		Expression: "request.operation != 'UPDATE' || " +
			"(has(object.spec.jobTemplate) ? object.spec.jobTemplate.spec.template.metadata : object.spec.template.metadata) != " +
			"(has(oldObject.spec.jobTemplate) ? oldObject.spec.jobTemplate.spec.template.metadata : oldObject.spec.template.metadata)",
	}}
	podsChanged, workloadsChanged := labelsChanged, templateChanged
	if o.CustomRules {
		// A custom rule may judge an image or a container added: every
		// pod and ephemeral-container UPDATE is sent. A status write
		// cannot touch the spec, so it is still sent only when it
		// changes metadata (the kubelet writes status all the time).
		podsChanged = []admissionregistrationv1.MatchCondition{{
			Name:       "not-status-or-metadata-change",
			Expression: "request.operation != 'UPDATE' || !has(request.subResource) || request.subResource != 'status' || " + metadataChanged,
		}}
		workloadsChanged = nil
	}

	// hook fills what every webhook shares: the service path, the
	// exclusions, fail-closed, the timeout and the side-effect class.
	hook := func(name, path string, rules []admissionregistrationv1.RuleWithOperations, conds []admissionregistrationv1.MatchCondition) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name: name, ClientConfig: client(path), Rules: rules, MatchConditions: conds,
			FailurePolicy: &fail, MatchPolicy: &equivalent, NamespaceSelector: selector, SideEffects: &sideEffects,
			TimeoutSeconds: &timeout, AdmissionReviewVersions: versions,
		}
	}
	mutate := func(w admissionregistrationv1.ValidatingWebhook) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name: w.Name, ClientConfig: w.ClientConfig, Rules: w.Rules, MatchConditions: w.MatchConditions,
			FailurePolicy: w.FailurePolicy, MatchPolicy: w.MatchPolicy, NamespaceSelector: w.NamespaceSelector, SideEffects: w.SideEffects,
			TimeoutSeconds: w.TimeoutSeconds, AdmissionReviewVersions: w.AdmissionReviewVersions, ReinvocationPolicy: &never,
		}
	}
	namespaces := []admissionregistrationv1.RuleWithOperations{
		rule("", "v1", []string{"namespaces"}, create, update),
		rule("", "v1", []string{"namespaces/status"}, update),
	}
	pods := []admissionregistrationv1.RuleWithOperations{
		rule("", "v1", []string{"pods"}, create, update),
		rule("", "v1", []string{"pods/status", "pods/ephemeralcontainers"}, update),
	}
	labels := map[string]string{"app.kubernetes.io/name": "palisade"}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: MutatingConfigurationName, Labels: labels},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			mutate(hook("namespaces.mutate.palisade.dev", PathMutateNamespaces, namespaces, labelsChanged)),
			mutate(hook("pods.mutate.palisade.dev", PathMutatePods, []admissionregistrationv1.RuleWithOperations{rule("", "v1", []string{"pods"}, create)}, nil)),
		},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: ValidatingConfigurationName, Labels: labels},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			hook("namespaces.validate.palisade.dev", PathValidateNamespaces, namespaces, labelsChanged),
			hook("pods.validate.palisade.dev", PathValidatePods, pods, podsChanged),
			hook("workloads.validate.palisade.dev", PathValidateWorkloads, []admissionregistrationv1.RuleWithOperations{
				rule("apps", "v1", []string{"deployments", "statefulsets", "daemonsets", "replicasets"}, create, update),
				rule("batch", "v1", []string{"jobs", "cronjobs"}, create, update),
			}, workloadsChanged),
			hook("networkpolicies.validate.palisade.dev", PathValidateNetworkPolicy,
				[]admissionregistrationv1.RuleWithOperations{rule("networking.k8s.io", "v1", []string{"networkpolicies"}, create, update, del)}, nil),
		},
	}
	return mutating, validating
}
