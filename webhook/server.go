package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Server limits, see ServeOptions.
const (
	DefaultMaxConcurrentRequests = 64
	DefaultReadTimeout           = 10 * time.Second
	// readHeaderTimeout bounds a connection that never finishes its
	// headers (slowloris); the API server sends them at once.
	readHeaderTimeout = 5 * time.Second
	// writeTimeout outlasts the longest webhook timeout the API server
	// allows (30 s), so an answer is never cut while it still waits.
	writeTimeout = 35 * time.Second
	idleTimeout  = 90 * time.Second
	maxHeader    = 64 << 10
)

// admissionServer is the TLS admission server (controller-runtime's
// webhook.Server interface), with what its default lacks: the caller's
// certificate checked before any handler, a bound on requests in flight,
// and a bound on the time to read one.
type admissionServer struct {
	host, certDir string
	port          int
	auth          *clientAuth // nil: callers are not authenticated
	slots         chan struct{}
	readTimeout   time.Duration
	metrics       *Metrics
	log           logr.Logger
	mux           *http.ServeMux

	mu      sync.Mutex
	started bool
}

// newAdmissionServer builds the server o describes; o's defaults are
// already filled in.
func newAdmissionServer(o ServeOptions) (*admissionServer, error) {
	s := &admissionServer{
		host: o.Host, port: o.Port, certDir: o.CertDir, readTimeout: o.ReadTimeout,
		slots: make(chan struct{}, o.MaxConcurrentRequests), metrics: o.Metrics,
		log: o.Log.WithName("admission-server"), mux: http.NewServeMux(),
	}
	if s.port == 0 {
		s.port = ctrlwebhook.DefaultPort
	}
	if s.certDir == "" {
		s.certDir = filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
	}
	if o.ClientCAFile == "" {
		o.Log.Info("WARNING: webhook callers are not authenticated (no client CA): anyone who reaches the admission port can have a forged AdmissionReview judged, recorded and turned into an Event; configure the API server's client certificate (README: Admission: who may call the webhook)")
		return s, nil
	}
	auth, err := newClientAuth(o.ClientCAFile, o.ClientNames, o.Metrics, s.log)
	if err != nil {
		return nil, err
	}
	s.auth = auth
	return s, nil
}

func (s *admissionServer) NeedLeaderElection() bool { return false }

func (s *admissionServer) Register(path string, hook http.Handler) { s.mux.Handle(path, hook) }

func (s *admissionServer) WebhookMux() *http.ServeMux { return s.mux }

// handler is the chain every request goes through: authentication first
// (a refused caller takes no slot), then the in-flight bound.
func (s *admissionServer) handler() http.Handler {
	var h http.Handler = s.limit(s.mux)
	if s.auth != nil {
		h = s.auth.wrap(h)
	}
	return h
}

// limit answers 429 when every slot is taken: the API server then applies
// the webhook's failurePolicy (Fail for governed namespaces), so an
// overload is a refusal, never an unjudged admission.
func (s *admissionServer) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.slots <- struct{}{}:
		default:
			s.metrics.refuse(RefusedOverloaded)
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf("too many admission requests in flight (%d)", cap(s.slots)), http.StatusTooManyRequests)
			return
		}
		if s.metrics != nil {
			s.metrics.inFlight.Inc()
			defer s.metrics.inFlight.Dec()
		}
		defer func() { <-s.slots }()
		next.ServeHTTP(w, r)
	})
}

// Start serves until ctx ends.
func (s *admissionServer) Start(ctx context.Context) error {
	watcher, err := certwatcher.New(filepath.Join(s.certDir, "tls.crt"), filepath.Join(s.certDir, "tls.key"))
	if err != nil {
		return fmt.Errorf("load serving certificate: %w", err)
	}
	go func() {
		if err := watcher.Start(ctx); err != nil {
			s.log.Error(err, "serving certificate watcher stopped")
		}
	}()
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: watcher.GetCertificate,
		// HTTP/1.1 only: ReadTimeout then bounds each request, and one
		// connection cannot multiplex past the in-flight bound.
		NextProtos: []string{"http/1.1"},
	}
	if s.auth != nil {
		// Requested, verified in HTTP (clientAuth): a refusal gets a
		// status and a count instead of a handshake error.
		cfg.ClientAuth = tls.RequestClientCert
	}
	addr := net.JoinHostPort(s.host, strconv.Itoa(s.port))
	ln, err := tls.Listen("tcp", addr, cfg)
	if err != nil {
		return fmt.Errorf("serve admission: %w", err)
	}
	srv := &http.Server{
		Handler:           s.handler(),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       s.readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeader,
		// Failed handshakes and the like: at debug level, so a scan of
		// the port cannot flood the log.
		ErrorLog: log.New(logWriter{s.log.V(1)}, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			s.log.Error(err, "shut down admission server")
		}
	}()
	s.log.Info("serving admission", "address", addr, "clientAuth", s.auth != nil, "maxConcurrentRequests", cap(s.slots))
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admission: %w", err)
	}
	<-done
	return nil
}

// logWriter turns net/http's error log lines into log entries.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}

// StartedChecker passes once the server accepts TLS connections.
func (s *admissionServer) StartedChecker() healthz.Checker {
	return func(*http.Request) error {
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if !started {
			return errors.New("admission server not started yet")
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(s.host, strconv.Itoa(s.port)),
			&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only asks whether TLS answers
		if err != nil {
			return fmt.Errorf("admission server not reachable: %w", err)
		}
		return conn.Close()
	}
}
