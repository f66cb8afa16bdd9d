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
	labelsChanged := []admissionregistrationv1.MatchCondition{{
		Name:       "create-or-metadata-change",
		Expression: "request.operation != 'UPDATE' || " + changed("labels") + " || " + changed("annotations"),
	}}
	templateChanged := []admissionregistrationv1.MatchCondition{{
		Name: "create-or-template-metadata-change",
		Expression: "request.operation != 'UPDATE' || " +
			"(has(object.spec.jobTemplate) ? object.spec.jobTemplate.spec.template.metadata : object.spec.template.metadata) != " +
			"(has(oldObject.spec.jobTemplate) ? oldObject.spec.jobTemplate.spec.template.metadata : oldObject.spec.template.metadata)",
	}}

	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: MutatingConfigurationName, Labels: map[string]string{"app.kubernetes.io/name": "palisade"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			{
				Name:                    "namespaces.mutate.palisade.dev",
				ClientConfig:            client(PathMutateNamespaces),
				Rules:                   []admissionregistrationv1.RuleWithOperations{rule("", "v1", []string{"namespaces"}, create, update)},
				FailurePolicy:           &fail,
				MatchPolicy:             &equivalent,
				NamespaceSelector:       selector,
				SideEffects:             &sideEffects,
				TimeoutSeconds:          &timeout,
				AdmissionReviewVersions: versions,
				ReinvocationPolicy:      &never,
				MatchConditions:         labelsChanged,
			},
			{
				Name:                    "pods.mutate.palisade.dev",
				ClientConfig:            client(PathMutatePods),
				Rules:                   []admissionregistrationv1.RuleWithOperations{rule("", "v1", []string{"pods"}, create)},
				FailurePolicy:           &fail,
				MatchPolicy:             &equivalent,
				NamespaceSelector:       selector,
				SideEffects:             &sideEffects,
				TimeoutSeconds:          &timeout,
				AdmissionReviewVersions: versions,
				ReinvocationPolicy:      &never,
			},
		},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: ValidatingConfigurationName, Labels: map[string]string{"app.kubernetes.io/name": "palisade"}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			{
				Name:                    "namespaces.validate.palisade.dev",
				ClientConfig:            client(PathValidateNamespaces),
				Rules:                   []admissionregistrationv1.RuleWithOperations{rule("", "v1", []string{"namespaces"}, create, update)},
				FailurePolicy:           &fail,
				MatchPolicy:             &equivalent,
				NamespaceSelector:       selector,
				SideEffects:             &sideEffects,
				TimeoutSeconds:          &timeout,
				AdmissionReviewVersions: versions,
				MatchConditions:         labelsChanged,
			},
			{
				Name:                    "pods.validate.palisade.dev",
				ClientConfig:            client(PathValidatePods),
				Rules:                   []admissionregistrationv1.RuleWithOperations{rule("", "v1", []string{"pods"}, create, update)},
				FailurePolicy:           &fail,
				MatchPolicy:             &equivalent,
				NamespaceSelector:       selector,
				SideEffects:             &sideEffects,
				TimeoutSeconds:          &timeout,
				AdmissionReviewVersions: versions,
				MatchConditions:         labelsChanged,
			},
			{
				Name:         "workloads.validate.palisade.dev",
				ClientConfig: client(PathValidateWorkloads),
				Rules: []admissionregistrationv1.RuleWithOperations{
					rule("apps", "v1", []string{"deployments", "statefulsets", "daemonsets", "replicasets"}, create, update),
					rule("batch", "v1", []string{"jobs", "cronjobs"}, create, update),
				},
				FailurePolicy:           &fail,
				MatchPolicy:             &equivalent,
				NamespaceSelector:       selector,
				SideEffects:             &sideEffects,
				TimeoutSeconds:          &timeout,
				AdmissionReviewVersions: versions,
				MatchConditions:         templateChanged,
			},
			{
				Name:                    "networkpolicies.validate.palisade.dev",
				ClientConfig:            client(PathValidateNetworkPolicy),
				Rules:                   []admissionregistrationv1.RuleWithOperations{rule("networking.k8s.io", "v1", []string{"networkpolicies"}, create, update, del)},
				FailurePolicy:           &fail,
				MatchPolicy:             &equivalent,
				NamespaceSelector:       selector,
				SideEffects:             &sideEffects,
				TimeoutSeconds:          &timeout,
				AdmissionReviewVersions: versions,
			},
		},
	}
	return mutating, validating
}
