package gatekeeper

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/palisade-dev/palisade/rules"
)

const (
	corpusDir      = "../testdata/corpus"
	expectAnnotion = "corpus.palisade.dev/expect"
)

// corpusObject is one object of the differential corpus.
type corpusObject struct {
	where string
	obj   *unstructured.Unstructured
}

func (o corpusObject) String() string {
	name := o.obj.GetName()
	if name == "" {
		name = o.obj.GetGenerateName() + "*"
	}
	if ns := o.obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return o.obj.GetKind() + " " + name + " (" + o.where + ")"
}

// loadCorpus reads the corpus and indexes its namespaces by name.
func loadCorpus(t testing.TB) ([]corpusObject, map[string]*corev1.Namespace) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(corpusDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus files in %s: %v", corpusDir, err)
	}
	sort.Strings(paths)
	var objs []corpusObject
	namespaces := map[string]*corev1.Namespace{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range splitDocuments(filepath.Base(p), data) {
			if err := d.decode(); err != nil {
				t.Fatal(err)
			}
			objs = append(objs, corpusObject{where: d.where(), obj: d.obj})
			if d.obj.GetKind() == "Namespace" {
				ns := &corev1.Namespace{}
				fromU(t, d.obj, ns)
				namespaces[ns.Name] = ns
			}
		}
	}
	return objs, namespaces
}

func fromU(t testing.TB, u *unstructured.Unstructured, out any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("decode %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

var systemNS = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true}

// governed is the webhook's test: system namespaces and exempt ones are
// not judged by the standard.
func governed(ns *corev1.Namespace) bool {
	return !systemNS[ns.Name] && ns.Annotations[rules.AnnotationExempt] != "true"
}

// judgeNative judges o as the webhook does on CREATE: a namespace by its
// labels, a pod after inheritance, a workload by its pod template.
func judgeNative(t testing.TB, e *rules.Evaluator, o corpusObject, namespaces map[string]*corev1.Namespace) []rules.Violation {
	t.Helper()
	u := o.obj
	if u.GetKind() == "Namespace" {
		ns := namespaces[u.GetName()]
		if !governed(ns) {
			return nil
		}
		return e.Namespace(ns)
	}
	ns, ok := namespaces[u.GetNamespace()]
	if !ok {
		t.Fatalf("%s: namespace %q is not in the corpus", o, u.GetNamespace())
	}
	if !governed(ns) {
		return nil
	}
	name := u.GetName()
	if name == "" {
		name = u.GetGenerateName() + "*"
	}
	object := strings.ToLower(u.GetKind()) + " " + ns.Name + "/" + name
	var template *corev1.PodTemplateSpec
	switch u.GetKind() {
	case "Pod":
		pod := &corev1.Pod{}
		fromU(t, u, pod)
		labels := map[string]string{}
		for k, v := range pod.Labels {
			labels[k] = v
		}
		for k, v := range e.Inherit(pod.Labels, ns) {
			labels[k] = v
		}
		return e.Pod(object, labels, ns)
	case "Deployment":
		w := &appsv1.Deployment{}
		fromU(t, u, w)
		template = &w.Spec.Template
	case "StatefulSet":
		w := &appsv1.StatefulSet{}
		fromU(t, u, w)
		template = &w.Spec.Template
	case "DaemonSet":
		w := &appsv1.DaemonSet{}
		fromU(t, u, w)
		template = &w.Spec.Template
	case "ReplicaSet":
		w := &appsv1.ReplicaSet{}
		fromU(t, u, w)
		template = &w.Spec.Template
	case "Job":
		w := &batchv1.Job{}
		fromU(t, u, w)
		template = &w.Spec.Template
	case "CronJob":
		w := &batchv1.CronJob{}
		fromU(t, u, w)
		template = &w.Spec.JobTemplate.Spec.Template
	default:
		t.Fatalf("%s: kind not governed", o)
	}
	return e.Pod(object+" (pod template)", template.Labels, ns)
}

// admissionRequest builds the CREATE request the API server would send.
func admissionRequest(t testing.TB, u *unstructured.Unstructured) *admissionv1.AdmissionRequest {
	t.Helper()
	raw, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	gvk := u.GroupVersionKind()
	return &admissionv1.AdmissionRequest{
		UID:       "corpus",
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Resource:  metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"},
		Name:      u.GetName(),
		Namespace: u.GetNamespace(),
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}
}

// denies reports whether any violation denies the request.
func denies(vs []rules.Violation) bool {
	for _, v := range vs {
		if v.Action == rules.ActionDeny {
			return true
		}
	}
	return false
}

// finding is a violation reduced to what both sides must agree on.
type finding struct {
	ruleID string
	action rules.Action
	// text is the message after its "[ruleID] " prefix.
	text string
}

func (f finding) String() string { return fmt.Sprintf("%s %s: %s", f.action, f.ruleID, f.text) }

// findings normalises violations; ruleIDs maps a Gatekeeper RuleID
// (constraint kind/name) back to the standard's rule ID.
func findings(t testing.TB, vs []rules.Violation, ruleIDs map[string]string) []finding {
	t.Helper()
	out := make([]finding, 0, len(vs))
	for _, v := range vs {
		id := v.RuleID
		if ruleIDs != nil {
			mapped, ok := ruleIDs[id]
			if !ok {
				t.Fatalf("violation of unknown constraint %s: %s", id, v.Message)
			}
			id = mapped
		}
		prefix := "[" + v.RuleID + "] "
		if !strings.HasPrefix(v.Message, prefix) {
			t.Fatalf("message %q does not start with %q", v.Message, prefix)
		}
		out = append(out, finding{ruleID: id, action: v.Action, text: strings.TrimPrefix(v.Message, prefix)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ruleID != out[j].ruleID {
			return out[i].ruleID < out[j].ruleID
		}
		return out[i].text < out[j].text
	})
	return out
}
