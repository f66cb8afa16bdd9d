package enforcer

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/rest"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

func newTestAgent(t *testing.T, opts Options) (*Agent, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	if opts.NodeName == "" {
		opts.NodeName = "node1"
	}
	opts.Registerer = reg
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	a, err := New(&rest.Config{Host: "https://127.0.0.1:1"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, reg, &logs
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *rest.Config
		opts Options
		want string
	}{
		{"no node name", &rest.Config{}, Options{}, "node name is empty"},
		{"no API server", nil, Options{NodeName: "n"}, "nil API server config"},
	} {
		if _, err := New(tc.cfg, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := New(&rest.Config{}, Options{NodeName: "n", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(&rest.Config{}, Options{NodeName: "n", Registerer: reg}); err == nil || !strings.Contains(err.Error(), "register enforcer metrics") {
		t.Errorf("second agent on one registry: %v, want a registration error", err)
	}
}

// An invalid policy is counted and logged once, however often the same
// cluster compiles; the gauge falls back when it is fixed.
func TestInvalidObjectsAreCountedAndLoggedOnce(t *testing.T) {
	a, _, logs := newTestAgent(t, Options{})
	c, err := policy.ReadManifests("bad", strings.NewReader(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: bad-cidr}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.1/8}}]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: x, annotations: {palisade.dev/enforcement: sometimes}}
`))
	if err != nil {
		t.Fatal(err)
	}
	st, compileErr := policy.Compile(c, policy.Options{NodeName: "node1"})
	if st == nil || compileErr == nil {
		t.Fatalf("fixture: state %v, error %v: want a state and errors", st, compileErr)
	}
	a.reportInvalid(compileErr)
	a.reportInvalid(compileErr)
	if got := gaugeValue(t, a.metrics.invalidObjects.WithLabelValues("policy")); got != 1 {
		t.Errorf("invalid policies %v, want 1", got)
	}
	if got := gaugeValue(t, a.metrics.invalidObjects.WithLabelValues("namespace")); got != 1 {
		t.Errorf("invalid namespaces %v, want 1", got)
	}
	if n := strings.Count(logs.String(), "bad-cidr"); n != 1 {
		t.Errorf("the invalid policy was logged %d times, want once:\n%s", n, logs)
	}
	a.reportInvalid(nil)
	if got := gaugeValue(t, a.metrics.invalidObjects.WithLabelValues("policy")); got != 0 {
		t.Errorf("invalid policies after the fix %v, want 0", got)
	}
}

func TestFlattenJoinedErrors(t *testing.T) {
	e1, e2, e3 := errors.New("1"), errors.New("2"), errors.New("3")
	got := flatten(errors.Join(e1, errors.Join(e2, e3)))
	if len(got) != 3 || got[0] != e1 || got[1] != e2 || got[2] != e3 {
		t.Errorf("flatten = %v", got)
	}
	if flatten(nil) != nil {
		t.Error("flatten(nil) is not empty")
	}
}

// The kernel counters are read at scrape time; a failed read is a scrape
// error, not a zero.
func TestDatapathCountersAtScrapeTime(t *testing.T) {
	a, reg, _ := newTestAgent(t, Options{})
	if got := gathered(t, reg, "palisade_enforcer_datapath_packets_total"); len(got) != 0 {
		t.Errorf("before the datapath opens: %v; want no series", got)
	}
	reads := 0
	a.metrics.datapath.setSource(func() (map[string]uint64, error) {
		reads++
		return map[string]uint64{"drop_policy": 3, "allowed_policy": 5}, nil
	})
	got := gathered(t, reg, "palisade_enforcer_datapath_packets_total")
	if len(got) != 2 || got[`counter="allowed_policy"`] != 5 || got[`counter="drop_policy"`] != 3 {
		t.Errorf("series %v: want allowed_policy 5, drop_policy 3", got)
	}
	if reads != 1 {
		t.Errorf("%d reads for one scrape", reads)
	}
	a.metrics.datapath.setSource(func() (map[string]uint64, error) { return nil, errors.New("map gone") })
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "map gone") {
		t.Errorf("gather with a failing read: %v, want the error", err)
	}
}

func TestHealthEndpoints(t *testing.T) {
	a, _, _ := newTestAgent(t, Options{})
	srv := httptest.NewServer(a.healthHandler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, strings.TrimSpace(b.String())
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body != "no policy state enforced yet" {
		t.Errorf("/readyz before the first sync: %d %q", code, body)
	}
	a.ready.Store(true)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the first sync: %d", code)
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// gathered returns one metric family's values by their label pairs.
func gathered(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			out[strings.Join(labels, ",")] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}
