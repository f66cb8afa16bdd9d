package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/audit"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// deny creates a pod the standard rejects and returns kubectl's stderr.
func deny(ctx context.Context, t *testing.T, s *suite, ns, name string) string {
	t.Helper()
	res, err := s.kubectl["alice"].Run(ctx, `
apiVersion: v1
kind: Pod
metadata: {name: `+name+`, namespace: `+ns+`, labels: {app: x}}
spec: {containers: [{name: c, image: registry.example/x:1}]}
`, "create", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if res.Exit != 1 {
		t.Fatalf("want a denial, got exit %d: %s", res.Exit, res.Stderr)
	}
	return res.Stderr
}

func TestDecisionRecordsVerifyAndDetectTampering(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	createNamespace(ctx, t, s, "ev-records", "internal")
	deny(ctx, t, s, "ev-records", "evidence-probe")

	data, err := os.ReadFile(s.auditFile)
	if err != nil {
		t.Fatal(err)
	}
	n, err := audit.Verify(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("untouched decision file does not verify: %v", err)
	}
	recs, err := audit.ReadRecords(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var found *audit.DecisionRecord
	for i := range recs {
		if recs[i].Name == "evidence-probe" && recs[i].Decision == audit.DecisionDenied {
			found = &recs[i]
		}
	}
	if found == nil {
		t.Fatalf("no denied record for pod evidence-probe among %d records", n)
	}
	if found.User != "alice" || found.Operation != "CREATE" || found.Kind != "v1/Pod" || found.Namespace != "ev-records" ||
		len(found.Rules) != 1 || found.Rules[0].RuleID != "pod-tier" || found.Rules[0].Action != "deny" || found.Standard != "default@1.0.0" {
		t.Errorf("record = %+v", *found)
	}

	// One byte changed in the middle of the file: verification names the line.
	lines := bytes.SplitAfter(data, []byte("\n"))
	mid := len(lines) / 2
	i := bytes.Index(lines[mid], []byte(`"decision":"`))
	if i < 0 {
		t.Fatalf("line %d has no decision field: %s", mid+1, lines[mid])
	}
	tampered := bytes.Clone(data)
	off := len(bytes.Join(lines[:mid], nil)) + i + len(`"decision":"`)
	tampered[off] ^= 0x01
	_, err = audit.Verify(bytes.NewReader(tampered))
	var chain *audit.ChainError
	if !errors.As(err, &chain) {
		t.Fatalf("tampered file: err = %v, want a ChainError", err)
	}
	if chain.Line != mid+1 {
		t.Errorf("tampered file: first bad line %d, want %d", chain.Line, mid+1)
	}
}

func TestDenialBecomesNamespaceEvent(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	createNamespace(ctx, t, s, "ev-events", "internal")
	deny(ctx, t, s, "ev-events", "event-probe")
	eventually(t, "denial event", func() bool {
		var list eventsv1.EventList
		if err := s.admin.List(ctx, &list, client.InNamespace("ev-events")); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Reason == "AdmissionDenied" && e.Regarding.Kind == "Pod" && e.Regarding.Name == "event-probe" && e.Type == "Warning" &&
				strings.Contains(e.Note, "[pod-tier] pod ev-events/event-probe: missing label tier") {
				return true
			}
		}
		return false
	})
}

func TestAdmissionMetrics(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	createNamespace(ctx, t, s, "ev-metrics", "internal")
	deny(ctx, t, s, "ev-metrics", "metrics-probe")
	families, err := s.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "palisade_admission_requests_total":
				if labels["kind"] == "Pod" && labels["operation"] == "CREATE" && labels["decision"] == "denied" && m.GetCounter().GetValue() >= 1 {
					found[f.GetName()] = true
				}
			case "palisade_admission_violations_total":
				if labels["rule"] == "pod-tier" && labels["action"] == "deny" && m.GetCounter().GetValue() >= 1 {
					found[f.GetName()] = true
				}
			case "palisade_admission_duration_seconds":
				if labels["webhook"] == "validate-pods" && m.GetHistogram().GetSampleCount() >= 1 {
					found[f.GetName()] = true
				}
			}
		}
	}
	for _, name := range []string{"palisade_admission_requests_total", "palisade_admission_violations_total", "palisade_admission_duration_seconds"} {
		if !found[name] {
			t.Errorf("metric %s has no sample for the denied pod", name)
		}
	}
}
