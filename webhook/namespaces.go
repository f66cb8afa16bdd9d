package webhook

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/palisade-dev/palisade/rules"
)

// namespaceJudge mutates and validates Namespaces.
type namespaceJudge struct{ *decider }

// mutate records the namespace's baseline profile in an annotation, so
// that users and the enforcer see which baseline it gets.
func (j namespaceJudge) mutate(_ context.Context, req admission.Request) (verdict, error) {
	ns := &corev1.Namespace{}
	if err := j.decoder.Decode(req, ns); err != nil {
		return verdict{}, fmt.Errorf("decode namespace: %w", err)
	}
	if !j.governed(ns) {
		return verdict{ns: ns, note: "namespace not governed"}, nil
	}
	profile := j.opts.Evaluator.Standard().ProfileFor(ns.Labels).Name
	if ns.Annotations[rules.AnnotationProfile] == profile {
		return verdict{ns: ns, governed: true}, nil
	}
	patches := setEntries("/metadata/annotations", ns.Annotations, map[string]string{rules.AnnotationProfile: profile})
	return verdict{ns: ns, governed: true, patches: patches}, nil
}

// validate judges the namespace's labels and its reserved keys. An UPDATE
// that leaves the labels alone is not re-judged on them: a namespace that
// predates the standard must stay manageable (finalizers, annotations).
// A label change by an unprivileged requester is also judged for what it
// does beyond the namespace: lowering its data classification, or moving
// it into or out of another namespace's NetworkPolicy namespaceSelector.
func (j namespaceJudge) validate(ctx context.Context, req admission.Request) (verdict, error) {
	ns := &corev1.Namespace{}
	if err := j.decoder.Decode(req, ns); err != nil {
		return verdict{}, fmt.Errorf("decode namespace: %w", err)
	}
	var old *corev1.Namespace
	if req.Operation == "UPDATE" {
		old = &corev1.Namespace{}
		if err := j.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return verdict{}, fmt.Errorf("decode old namespace: %w", err)
		}
	}
	if j.opts.isSystem(ns.Name) {
		return verdict{ns: ns, note: "system namespace"}, nil
	}
	v := verdict{ns: ns, governed: true}
	e := j.opts.Evaluator
	object := "namespace " + ns.Name
	labelsChanged := old == nil || !maps.Equal(old.Labels, ns.Labels)
	if !j.privileged(req) {
		var oldMeta *metav1.ObjectMeta
		var oldLabels map[string]string
		if old != nil {
			oldMeta, oldLabels = &old.ObjectMeta, old.Labels
			if oldLabels == nil {
				oldLabels = map[string]string{}
			}
		}
		allowed := map[string]string{rules.AnnotationProfile: e.Standard().ProfileFor(ns.Labels).Name}
		v.violations = append(v.violations, e.ReservedKeys(object, oldMeta, &ns.ObjectMeta, allowed, ns)...)
		if labelsChanged {
			v.violations = append(v.violations, e.ClassificationLowered(object, oldLabels, ns.Labels, ns)...)
			selected, err := j.selectedByPolicies(ctx, object, ns, oldLabels)
			if err != nil {
				return verdict{}, err
			}
			v.violations = append(v.violations, selected...)
		}
	}
	if ns.Annotations[rules.AnnotationExempt] == "true" {
		v.governed = false
		v.note = "exempt namespace"
		return v, nil
	}
	if !labelsChanged && old.Annotations[rules.AnnotationRuleActions] == ns.Annotations[rules.AnnotationRuleActions] {
		v.note = "labels unchanged"
		return v, nil
	}
	v.violations = append(v.violations, e.Namespace(ns)...)
	return v, nil
}

// selectedByPolicies judges a label change against the namespaceSelectors
// of every other namespace's NetworkPolicies. They are listed past the
// cache, which holds only Palisade's own policies: a label change of a
// namespace is rare, a cluster's user policies may be many.
func (j namespaceJudge) selectedByPolicies(ctx context.Context, object string, ns *corev1.Namespace, oldLabels map[string]string) ([]rules.Violation, error) {
	var list networkingv1.NetworkPolicyList
	if err := j.opts.APIReader.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list networkpolicies: %w", err)
	}
	return j.opts.Evaluator.SelectedByPolicies(object, ns.Name, oldLabels, ns.Labels, list.Items, ns), nil
}

// privileged reports whether the requester may set reserved keys.
func (d *decider) privileged(req admission.Request) bool {
	return req.UserInfo.Username == d.opts.ServiceAccount || d.opts.Evaluator.IsPrivileged(req.UserInfo.Groups)
}

// governed reports whether the standard applies in namespace ns.
func (d *decider) governed(ns *corev1.Namespace) bool {
	return ns != nil && !d.opts.isSystem(ns.Name) && ns.Annotations[rules.AnnotationExempt] != "true" && ns.DeletionTimestamp == nil
}

// namespace fetches a namespace from the cache, or past it when the cache
// has not seen it yet (created a moment ago). Not found is nil, nil.
func (d *decider) namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	err := d.opts.Client.Get(ctx, types.NamespacedName{Name: name}, ns)
	if apierrors.IsNotFound(err) {
		err = d.opts.APIReader.Get(ctx, types.NamespacedName{Name: name}, ns)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get namespace %s: %w", name, err)
	}
	return ns, nil
}
