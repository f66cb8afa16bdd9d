package rules

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSmoke(t *testing.T) {
	e, err := NewEvaluator(Default())
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"env": "prod"}, Annotations: map[string]string{AnnotationRuleActions: "pod-tier=warn,x"}}}
	for _, v := range e.Namespace(ns) {
		fmt.Println(v.Action, v.Message)
	}
	for _, v := range e.Pod("pod shop/web", map[string]string{"app": "Bad_Name", "env": "dev"}, ns) {
		fmt.Println(v.Action, v.Message)
	}
	_, err = Parse([]byte("apiVersion: x\nkind: LabelingStandard\nmetadata: {name: a}\nspec:\n  labels:\n  - id: a\n    target: Pods\n    key: x\n    tagret: 1\n"), "standard.yaml")
	fmt.Println(err)
	_, err = Parse([]byte("apiVersion: x\nkind: LabelingStandard\nmetadata: {name: a}\nspec:\n  labels:\n  - id: a\n    target: Pods\n    key: x\n  - id: pod-app\n    target: Pod\n    key: app\n    pattern: '['\n"), "standard.yaml")
	fmt.Println(err)
}
