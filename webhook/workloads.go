package webhook

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// workloadJudge validates the pod templates of workload controllers, so
// that a bad Deployment fails at kubectl apply instead of its ReplicaSet
// failing to create pods later, out of the user's sight.
type workloadJudge struct{ *decider }

func (j workloadJudge) validate(ctx context.Context, req admission.Request) (verdict, error) {
	obj, template, ok := newWorkload(req.Kind.Group, req.Kind.Kind)
	if !ok {
		j.opts.Log.Info("kind not governed", "kind", req.Kind.String(), "uid", req.UID)
		return verdict{note: "kind " + req.Kind.Kind + " not governed"}, nil
	}
	if err := j.decoder.Decode(req, obj); err != nil {
		return verdict{}, fmt.Errorf("decode %s: %w", req.Kind.Kind, err)
	}
	meta := &template(obj).ObjectMeta
	var oldMeta *metav1.ObjectMeta
	if req.Operation == "UPDATE" {
		old, oldTemplate, _ := newWorkload(req.Kind.Group, req.Kind.Kind)
		if err := j.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return verdict{}, fmt.Errorf("decode old %s: %w", req.Kind.Kind, err)
		}
		oldMeta = &oldTemplate(old).ObjectMeta
	}
	object := strings.ToLower(req.Kind.Kind) + " " + req.Namespace + "/" + objectName(obj.(metav1.Object)) + " (pod template)"
	return j.judgeLabels(ctx, req, object, oldMeta, meta)
}

// newWorkload returns an empty object of a governed workload kind and a
// function returning its pod template.
func newWorkload(group, kind string) (runtime.Object, func(runtime.Object) *corev1.PodTemplateSpec, bool) {
	switch group + "/" + kind {
	case "apps/Deployment":
		return &appsv1.Deployment{}, func(o runtime.Object) *corev1.PodTemplateSpec { return &o.(*appsv1.Deployment).Spec.Template }, true
	case "apps/StatefulSet":
		return &appsv1.StatefulSet{}, func(o runtime.Object) *corev1.PodTemplateSpec { return &o.(*appsv1.StatefulSet).Spec.Template }, true
	case "apps/DaemonSet":
		return &appsv1.DaemonSet{}, func(o runtime.Object) *corev1.PodTemplateSpec { return &o.(*appsv1.DaemonSet).Spec.Template }, true
	case "apps/ReplicaSet":
		return &appsv1.ReplicaSet{}, func(o runtime.Object) *corev1.PodTemplateSpec { return &o.(*appsv1.ReplicaSet).Spec.Template }, true
	case "batch/Job":
		return &batchv1.Job{}, func(o runtime.Object) *corev1.PodTemplateSpec { return &o.(*batchv1.Job).Spec.Template }, true
	case "batch/CronJob":
		return &batchv1.CronJob{}, func(o runtime.Object) *corev1.PodTemplateSpec {
			return &o.(*batchv1.CronJob).Spec.JobTemplate.Spec.Template
		}, true
	}
	return nil, nil, false
}
