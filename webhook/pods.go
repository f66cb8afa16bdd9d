package webhook

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// podJudge mutates and validates Pods.
type podJudge struct {
	*decider
	baseline *baselineWriter
}

// mutate fills inherited labels and makes sure the namespace's baseline
// policies exist before the pod does: a pod admitted into a namespace
// created a moment ago would otherwise run before the reconciler isolates it.
func (j podJudge) mutate(ctx context.Context, req admission.Request) (verdict, error) {
	pod := &corev1.Pod{}
	if err := j.decoder.Decode(req, pod); err != nil {
		return verdict{}, fmt.Errorf("decode pod: %w", err)
	}
	ns, err := j.namespace(ctx, req.Namespace)
	if err != nil {
		return verdict{}, err
	}
	if !j.governed(ns) {
		return verdict{ns: ns, note: "namespace not governed"}, nil
	}
	dryRun := req.DryRun != nil && *req.DryRun
	if err := j.baseline.ensure(ctx, ns, dryRun); err != nil {
		return verdict{}, fmt.Errorf("ensure baseline policies of namespace %s: %w", ns.Name, err)
	}
	inherited := j.opts.Evaluator.Inherit(pod.Labels, ns)
	return verdict{ns: ns, governed: true, patches: setEntries("/metadata/labels", pod.Labels, inherited)}, nil
}

// validate judges the pod's labels. An UPDATE is judged only when it
// changes labels: the rest of a running pod is not this webhook's business.
func (j podJudge) validate(ctx context.Context, req admission.Request) (verdict, error) {
	pod := &corev1.Pod{}
	if err := j.decoder.Decode(req, pod); err != nil {
		return verdict{}, fmt.Errorf("decode pod: %w", err)
	}
	var oldMeta *metav1.ObjectMeta
	if req.Operation == "UPDATE" {
		old := &corev1.Pod{}
		if err := j.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return verdict{}, fmt.Errorf("decode old pod: %w", err)
		}
		oldMeta = &old.ObjectMeta
	}
	return j.judgeLabels(ctx, req, "pod "+req.Namespace+"/"+objectName(pod), oldMeta, &pod.ObjectMeta)
}

// judgeLabels applies the pod rules and the reserved-key rule to a pod's
// or pod template's metadata (old is nil on CREATE).
func (d *decider) judgeLabels(ctx context.Context, req admission.Request, object string, old, meta *metav1.ObjectMeta) (verdict, error) {
	ns, err := d.namespace(ctx, req.Namespace)
	if err != nil {
		return verdict{}, err
	}
	if ns == nil {
		return verdict{}, fmt.Errorf("namespace %s not found", req.Namespace)
	}
	if !d.governed(ns) {
		return verdict{ns: ns, note: "namespace not governed"}, nil
	}
	v := verdict{ns: ns, governed: true}
	e := d.opts.Evaluator
	if !d.privileged(req) {
		v.violations = e.ReservedKeys(object, old, meta, nil, ns)
	}
	if old != nil && maps.Equal(old.Labels, meta.Labels) {
		v.note = "labels unchanged"
		return v, nil
	}
	v.violations = append(v.violations, e.Pod(object, meta.Labels, ns)...)
	return v, nil
}

// objectName names an object in messages; a generateName object has no
// name yet.
func objectName(m metav1.Object) string {
	if n := m.GetName(); n != "" {
		return n
	}
	if g := m.GetGenerateName(); g != "" {
		return g + "*"
	}
	return "(unnamed)"
}
