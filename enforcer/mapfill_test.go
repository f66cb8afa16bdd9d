package enforcer

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/enforcer/datapath"
)

// A map crossing 80 % (in use or needed) is warned about once per
// crossing; the fill ratio is a gauge per map.
func TestMapFillWarnsOncePerCrossing(t *testing.T) {
	a, reg, logs := newTestAgent(t, Options{})
	fill := func(entries, wanted int) map[string]datapath.MapFill {
		return map[string]datapath.MapFill{"policy": {Entries: entries, Max: 100, Wanted: wanted}, "endpoints": {Entries: 1, Max: 100, Wanted: 1}}
	}
	warnings := func() int { return strings.Count(logs.String(), "datapath map nearly full") }
	for _, step := range []struct {
		entries, wanted int
		warned          int
		ratio           float64
	}{
		{10, 10, 0, 0.1},
		{79, 79, 0, 0.79},
		{10, 150, 1, 1.5}, // a State that does not fit: needed counts
		{80, 80, 1, 0.8},  // still over: no second warning
		{50, 50, 1, 0.5},
		{90, 90, 2, 0.9}, // crossed again
	} {
		a.checkFill(fill(step.entries, step.wanted))
		if got := warnings(); got != step.warned {
			t.Fatalf("after %+v: %d warnings, want %d:\n%s", step, got, step.warned, logs)
		}
		if got := gathered(t, reg, "palisade_enforcer_map_fill_ratio")[`map="policy"`]; got != step.ratio {
			t.Errorf("after %+v: fill ratio %v, want %v", step, got, step.ratio)
		}
	}
	if !strings.Contains(logs.String(), "flag=--map-policy") {
		t.Errorf("warning does not name the flag that grows the map:\n%s", logs)
	}
}

// /readyz turns unready while the last Sync failed, and ready again after
// one succeeds.
func TestReadyzUnreadyWhileSyncFails(t *testing.T) {
	a, _, _ := newTestAgent(t, Options{})
	srv := httptest.NewServer(a.healthHandler())
	defer srv.Close()
	status := func() int {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	a.ready.Store(true)
	err := errors.New("sync datapath: map full")
	a.failure.Store(&err)
	if got := status(); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a failed sync: %d, want 503", got)
	}
	if err := a.Ready(); err == nil || !strings.Contains(err.Error(), "map full") {
		t.Errorf("Ready() = %v, want the failure", err)
	}
	a.failure.Store(nil)
	if got := status(); got != http.StatusOK {
		t.Errorf("/readyz after a sync succeeded: %d, want 200", got)
	}
}
