package webhook

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/audit"
	"github.com/palisade-dev/palisade/rules"
)

// baselineWriter brings a namespace's managed NetworkPolicies to the set
// its profile calls for. The pod path and the reconciler share it.
type baselineWriter struct {
	opts *Options
}

// desired returns the baseline policies namespace ns should have: none
// when it is not governed.
func (w *baselineWriter) desired(ns *corev1.Namespace) []networkingv1.NetworkPolicy {
	if ns == nil || w.opts.isSystem(ns.Name) || ns.Annotations[rules.AnnotationExempt] == "true" {
		return nil
	}
	return rules.BaselinePolicies(ns.Name, w.opts.Evaluator.Standard().ProfileFor(ns.Labels))
}

// ensure creates whichever baseline policies of ns are missing (the pod
// path: quick, no edits). On a dry run it only checks.
func (w *baselineWriter) ensure(ctx context.Context, ns *corev1.Namespace, dryRun bool) error {
	for _, want := range w.desired(ns) {
		got := &networkingv1.NetworkPolicy{}
		err := w.opts.Client.Get(ctx, client.ObjectKeyFromObject(&want), got)
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get networkpolicy %s/%s: %w", want.Namespace, want.Name, err)
		}
		if dryRun {
			continue
		}
		// AlreadyExists: the cache lags a write of the reconciler's, or the
		// policy lost its label; either way it exists, and the reconciler
		// restores its content.
		if err := w.create(ctx, &want, "created before the namespace's first pod"); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// sync makes the managed policies of ns exactly the desired set: missing
// ones created, edited ones restored, ones no longer called for (profile
// changed, namespace exempted) deleted. It returns what it changed.
func (w *baselineWriter) sync(ctx context.Context, ns *corev1.Namespace) ([]string, error) {
	var changes []string
	if ns.DeletionTimestamp != nil {
		return nil, nil
	}
	desired := w.desired(ns)
	var have networkingv1.NetworkPolicyList
	if err := w.opts.Client.List(ctx, &have, client.InNamespace(ns.Name), client.MatchingLabels{rules.LabelManagedBy: rules.ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list managed networkpolicies in %s: %w", ns.Name, err)
	}
	existing := map[string]*networkingv1.NetworkPolicy{}
	for i := range have.Items {
		existing[have.Items[i].Name] = &have.Items[i]
	}
	for i := range desired {
		want := &desired[i]
		got, ok := existing[want.Name]
		delete(existing, want.Name)
		switch {
		case !ok:
			err := w.create(ctx, want, "restored a missing baseline policy")
			if apierrors.IsAlreadyExists(err) {
				// It exists without the managed label (the cache only
				// holds labelled policies): take it back.
				got = &networkingv1.NetworkPolicy{}
				if err := w.opts.APIReader.Get(ctx, client.ObjectKeyFromObject(want), got); err != nil {
					return changes, fmt.Errorf("get networkpolicy %s/%s: %w", want.Namespace, want.Name, err)
				}
				if err := w.update(ctx, got, want); err != nil {
					return changes, err
				}
				changes = append(changes, "update "+want.Name)
				continue
			}
			if err != nil {
				return changes, err
			}
			changes = append(changes, "create "+want.Name)
		case !matches(got, want):
			if err := w.update(ctx, got, want); err != nil {
				return changes, err
			}
			changes = append(changes, "update "+want.Name)
		}
	}
	for _, extra := range existing {
		if err := w.opts.Client.Delete(ctx, extra); err != nil && !apierrors.IsNotFound(err) {
			return changes, fmt.Errorf("delete networkpolicy %s/%s: %w", extra.Namespace, extra.Name, err)
		}
		w.count("delete")
		w.note(ctx, extra, "delete", "deleted a baseline policy the namespace's profile no longer calls for")
		changes = append(changes, "delete "+extra.Name)
	}
	return changes, nil
}

func (w *baselineWriter) create(ctx context.Context, want *networkingv1.NetworkPolicy, why string) error {
	obj := want.DeepCopy()
	if err := w.opts.Client.Create(ctx, obj); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return err
		}
		return fmt.Errorf("create networkpolicy %s/%s: %w", want.Namespace, want.Name, err)
	}
	w.count("create")
	w.note(ctx, obj, "create", why)
	return nil
}

func (w *baselineWriter) update(ctx context.Context, got, want *networkingv1.NetworkPolicy) error {
	obj := got.DeepCopy()
	obj.Spec = *want.Spec.DeepCopy()
	if obj.Labels == nil {
		obj.Labels = map[string]string{}
	}
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	maps.Copy(obj.Labels, want.Labels)
	maps.Copy(obj.Annotations, want.Annotations)
	if err := w.opts.Client.Update(ctx, obj); err != nil {
		return fmt.Errorf("restore networkpolicy %s/%s: %w", want.Namespace, want.Name, err)
	}
	w.count("update")
	w.note(ctx, obj, "update", "restored an edited baseline policy")
	return nil
}

// matches reports whether got already is want: same spec, and want's
// labels and annotations present.
func matches(got, want *networkingv1.NetworkPolicy) bool {
	if !equality.Semantic.DeepEqual(got.Spec, want.Spec) {
		return false
	}
	for k, v := range want.Labels {
		if got.Labels[k] != v {
			return false
		}
	}
	for k, v := range want.Annotations {
		if got.Annotations[k] != v {
			return false
		}
	}
	return true
}

func (w *baselineWriter) count(op string) {
	if w.opts.Metrics != nil {
		w.opts.Metrics.restored.WithLabelValues(op).Inc()
	}
}

// note records a baseline write as evidence: an auditor must be able to
// see that a deleted default-deny came back, and when.
func (w *baselineWriter) note(ctx context.Context, np *networkingv1.NetworkPolicy, op, why string) {
	std := w.opts.Evaluator.Standard()
	rec := audit.DecisionRecord{
		Time:      time.Now().UTC(),
		Webhook:   "reconcile",
		User:      w.opts.ServiceAccount,
		Operation: map[string]string{"create": "CREATE", "update": "UPDATE", "delete": "DELETE"}[op],
		Kind:      "networking.k8s.io/v1/NetworkPolicy",
		Namespace: np.Namespace,
		Name:      np.Name,
		Decision:  audit.DecisionMutated,
		Standard:  std.Metadata.Name + "@" + std.Metadata.Version,
		Message:   why,
	}
	if err := w.opts.Recorder.Record(ctx, rec); err != nil {
		w.opts.Log.Error(err, "record baseline change", "namespace", np.Namespace, "name", np.Name)
	}
	w.opts.Log.Info(why, "namespace", np.Namespace, "name", np.Name)
}

// namespaceKey is the reconcile key of a namespace.
func namespaceKey(name string) types.NamespacedName { return types.NamespacedName{Name: name} }
