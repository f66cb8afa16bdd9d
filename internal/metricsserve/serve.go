// Package metricsserve serves a process's Prometheus metrics in one of two
// ways, chosen by the address alone so that no flag can leave them open:
// on a loopback address in plain HTTP (reachable only from inside the pod
// or node), or on any other address over TLS with every scrape
// authenticated (TokenReview) and authorized (SubjectAccessReview for get
// on the non-resource URL /metrics) by the API server, through
// controller-runtime's secure metrics filter. Metrics name series, rules
// and rates an attacker would like to read; anonymous callers never get
// them off the host.
package metricsserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
)

// Path is where metrics are served, and the non-resource URL scrapers
// need get on.
const Path = "/metrics"

// Options configures one metrics endpoint.
type Options struct {
	// Addr is host:port to listen on. A loopback host (127.0.0.1, ::1,
	// localhost) serves plain HTTP without authentication; any other,
	// including an empty host, serves TLS with authentication and
	// authorization. Required.
	Addr string
	// Gatherer is what /metrics serves. Required.
	Gatherer prometheus.Gatherer
	// Config reaches the API server that reviews scrapers' tokens and
	// access. Required unless Addr is loopback.
	Config *rest.Config
	// CertDir holds tls.crt and tls.key for TLS, reloaded on change.
	// Default: a self-signed certificate generated at start (scrapers
	// then skip verification; the bearer token is what authenticates).
	CertDir string
	// Log defaults to a discarding logger.
	Log logr.Logger
}

// Server is one bound metrics endpoint.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	secure bool
	log    logr.Logger
	watch  *certwatcher.CertWatcher
}

// IsLoopback reports whether addr's host is a loopback address or
// "localhost"; an empty host (all addresses) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Listen checks o and binds the address; nothing is served until Serve.
func Listen(o Options) (*Server, error) {
	if o.Gatherer == nil {
		return nil, errors.New("serve metrics: no gatherer")
	}
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return nil, fmt.Errorf("serve metrics: address %q: %w", o.Addr, err)
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	s := &Server{secure: !IsLoopback(o.Addr), log: o.Log}
	var handler http.Handler = promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{})
	var tlsCfg *tls.Config
	if s.secure {
		if o.Config == nil {
			return nil, fmt.Errorf("serve metrics on %s: scrapes off the host must be authenticated by the API server, and there is no API server configuration; bind to a loopback address instead", o.Addr)
		}
		hc, err := rest.HTTPClientFor(o.Config)
		if err != nil {
			return nil, fmt.Errorf("serve metrics: create API server client: %w", err)
		}
		filter, err := filters.WithAuthenticationAndAuthorization(o.Config, hc)
		if err != nil {
			return nil, fmt.Errorf("serve metrics: create authentication filter: %w", err)
		}
		if handler, err = filter(o.Log, handler); err != nil {
			return nil, fmt.Errorf("serve metrics: wrap handler: %w", err)
		}
		if tlsCfg, err = s.tlsConfig(o); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.Handle(Path, handler)
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("serve metrics: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	return s, nil
}

func (s *Server) tlsConfig(o Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if o.CertDir != "" {
		w, err := certwatcher.New(filepath.Join(o.CertDir, "tls.crt"), filepath.Join(o.CertDir, "tls.key"))
		if err != nil {
			return nil, fmt.Errorf("serve metrics: load certificate from %s: %w", o.CertDir, err)
		}
		s.watch = w
		cfg.GetCertificate = w.GetCertificate
		return cfg, nil
	}
	host, _, _ := net.SplitHostPort(o.Addr)
	if host == "" {
		host = "localhost"
	}
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey(host, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("serve metrics: generate self-signed certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("serve metrics: load self-signed certificate: %w", err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Secure reports whether scrapes are authenticated (TLS, TokenReview,
// SubjectAccessReview).
func (s *Server) Secure() bool { return s.secure }

// Close releases the address; after Run it is a no-op.
func (s *Server) Close() {
	_ = s.ln.Close()
}

// Run serves until ctx ends, then shuts the server down.
func (s *Server) Run(ctx context.Context) error {
	if s.watch != nil {
		go func() {
			if err := s.watch.Start(ctx); err != nil {
				s.log.Error(err, "metrics certificate watcher stopped")
			}
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info("serving metrics", "address", s.Addr().String(), "authenticated", s.secure)
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve metrics: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(shutdown)
	return nil
}
