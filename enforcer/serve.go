package enforcer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveHTTP starts the metrics and health endpoints the options name. A
// port that cannot be bound is a start-up error; the returned function
// stops both servers.
func (a *Agent) serveHTTP(ctx context.Context) (func(), error) {
	var servers []*http.Server
	stop := func() {
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		for _, s := range servers {
			s.Shutdown(shutdown)
		}
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
	if a.opts.Gatherer != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(a.opts.Gatherer, promhttp.HandlerOpts{}))
		if err := start("metrics", a.opts.MetricsAddr, mux); err != nil {
			stop()
			return nil, err
		}
	}
	if err := start("health probes", a.opts.HealthAddr, a.healthHandler()); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// healthHandler serves /healthz (the process answers) and /readyz (a
// State has been enforced since start).
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
