package metricsserve

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.1.2.3:1": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.1:8080": false, "example.com:80": false, "garbage": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %t, want %t", addr, got, want)
		}
	}
}

// TestListenRefusesAnOpenEndpoint: off loopback, metrics without an API
// server to check scrapers are refused at start, naming the way out.
func TestListenRefusesAnOpenEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Addr: ":0", Gatherer: reg}, "bind to a loopback address instead"},
		{Options{Addr: "0.0.0.0:0", Gatherer: reg}, "must be authenticated by the API server"},
		{Options{Addr: "127.0.0.1", Gatherer: reg}, `address "127.0.0.1"`},
		{Options{Addr: "127.0.0.1:0"}, "no gatherer"},
	} {
		if _, err := Listen(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Listen(%+v): %v, want %q", tc.o, err, tc.want)
		}
	}
}

// TestLoopbackServesPlainHTTP: on loopback, the series in plain HTTP,
// and only at /metrics.
func TestLoopbackServesPlainHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "probe_total", Help: "probe"}))
	s, err := Listen(Options{Addr: "127.0.0.1:0", Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if s.Secure() {
		t.Error("loopback endpoint reports itself authenticated")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	for path, want := range map[string]int{"/metrics": 200, "/": 404, "/debug/pprof/": 404} {
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 200) != strings.Contains(string(body), "probe_total") {
			t.Errorf("GET %s: %d, want %d (series only at /metrics)", path, resp.StatusCode, want)
		}
	}
}
