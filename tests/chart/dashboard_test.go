package chart_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestDashboardQueriesExistingMetrics: the Grafana dashboard is valid JSON
// and every metric its queries read is one the webhook or the enforcer
// registers (a renamed metric would leave an empty panel).
func TestDashboardQueriesExistingMetrics(t *testing.T) {
	r := mustRender(t, defaultRelease, values("grafanaDashboard.enabled", true))
	cm := typed[corev1.ConfigMap](t, r.one(t, "ConfigMap", "palisade-dashboard"))
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard=1 (the sidecar's default)", cm.Labels)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(cm.Data["palisade.json"]), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var code strings.Builder
	for _, f := range []string{"../../webhook/metrics.go", "../../enforcer/metrics.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code.Write(b)
	}
	metric := regexp.MustCompile(`palisade_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !strings.Contains(code.String(), `"`+base+`"`) {
					t.Errorf("panel %q reads %s, which no metrics.go registers", p.Title, m)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("the dashboard queries no Palisade metric")
	}
}
