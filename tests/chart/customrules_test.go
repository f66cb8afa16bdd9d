package chart_test

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/palisade-dev/palisade/rules/gatekeeper"
)

// A platform team's own rule, as it would put it in values: a CEL
// ConstraintTemplate and its Constraint.
const costCenterRule = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredcostcenter
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredCostCenter
  targets:
  - target: admission.k8s.gatekeeper.sh
    code:
    - engine: K8sNativeValidation
      source:
        validations:
        - expression: "has(variables.anyObject.metadata.labels) && 'cost-center' in variables.anyObject.metadata.labels"
          message: "add label cost-center"
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredCostCenter
metadata:
  name: pods-need-cost-center
spec:
  enforcementAction: warn
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
`

// TestCustomRulesLoad: the rules ConfigMap, written out the way the
// kubelet mounts it (one file per key), is what `palisade webhook --rules`
// loads.
func TestCustomRulesLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Gatekeeper's engines")
	}
	r := mustRender(t, defaultRelease, map[string]any{"customRules": map[string]any{"cost-center.yaml": costCenterRule}})
	cm := typed[corev1.ConfigMap](t, r.one(t, "ConfigMap", "palisade-rules"))
	dir := t.TempDir()
	for name, content := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := gatekeeper.LoadCustomRules(t.Context(), dir); err != nil {
		t.Fatalf("the rendered custom rules do not load: %v", err)
	}
}
