package enforcer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"

	"github.com/palisade-dev/palisade/internal/metricsserve"
)

// serveHTTP starts the metrics and health endpoints the options name. A
// port that cannot be bound is a start-up error; the returned function
// stops both servers.
func (a *Agent) serveHTTP(ctx context.Context) (func(), error) {
	var servers []*http.Server
	stopMetrics := func() {}
	stop := func() {
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		for _, s := range servers {
			s.Shutdown(shutdown)
		}
		stopMetrics()
	}
	start := func(what, addr string, h http.Handler) error {
		if addr == "" || addr == "0" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("serve %s: %w", what, err)
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, s)
		go func() {
			if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.opts.Logger.Error("serve "+what, "error", err)
			}
		}()
		a.opts.Logger.Info("serving "+what, "address", ln.Addr().String())
		return nil
	}
	// Metrics: plain HTTP on a loopback address; on any other, TLS with
	// each scrape's token checked by the API server (TokenReview, then
	// SubjectAccessReview for get on /metrics). The enforcer runs on the
	// host network, where no NetworkPolicy guards its port.
	if a.opts.Gatherer != nil && a.opts.MetricsAddr != "" && a.opts.MetricsAddr != "0" {
		ms, err := metricsserve.Listen(metricsserve.Options{
			Addr: a.opts.MetricsAddr, Gatherer: a.opts.Gatherer, Config: a.cfg, Log: logr.FromSlogHandler(a.opts.Logger.Handler()),
		})
		if err != nil {
			stop()
			return nil, err
		}
		metricsCtx, cancelMetrics := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := ms.Run(metricsCtx); err != nil {
				a.opts.Logger.Error("serve metrics", "error", err)
			}
		}()
		stopMetrics = func() { cancelMetrics(); <-done }
	}
	if err := start("health probes", a.opts.HealthAddr, a.healthHandler()); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// healthHandler serves /healthz (the process answers) and /readyz (a
// State has been enforced since start and the last Sync did not fail: a
// failing node is taken out of a rolling update's count of ready pods).
func (a *Agent) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := a.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
