package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/certs"
)

// Certificate modes of `palisade webhook` (--cert-mode). The first three
// are the chart's certs.mode values.
const (
	certModeSelfManaged = "self-managed"
	certModeCertManager = "cert-manager"
	certModeSecret      = "secret"
	certModeFiles       = "files"
)

var certModes = []string{certModeSelfManaged, certModeCertManager, certModeSecret, certModeFiles}

// Defaults equal to the chart's for a release named "palisade" (its
// names are <fullname>-webhook and <fullname>-webhook-tls).
const (
	defaultServiceName = "palisade-webhook"
	defaultCertSecret  = "palisade-webhook-tls"
)

// certificateWait bounds how long the first certificate may take before the
// process gives up with the reason. It stays under what the chart's
// liveness probe allows a replica whose health server is not up yet
// (15 s initial delay + 2 × 20 s), so that the reason is the last log line
// rather than a kill.
const certificateWait = 45 * time.Second

// validateCertFlags checks the certificate flags before anything starts.
// Every name is checked whatever the mode: they have defaults, and a typo
// should not wait for the day the mode changes.
func validateCertFlags(cfg webhookConfig) error {
	if !slices.Contains(certModes, cfg.certMode) {
		return usageError{fmt.Errorf("invalid --cert-mode: %q is not one of %s", cfg.certMode, strings.Join(certModes, ", "))}
	}
	for _, f := range []struct {
		flag, value string
		check       func(string) []string
	}{
		{"--namespace", cfg.namespace, validation.IsDNS1123Label},
		{"--cert-secret", cfg.certSecret, validation.IsDNS1123Subdomain},
		// A Service name is an RFC 1035 label (no leading digit).
		{"--service-name", cfg.serviceName, validation.IsDNS1035Label},
		{"--mutating-configuration", cfg.mutatingCfg, validation.IsDNS1123Subdomain},
		{"--validating-configuration", cfg.validatingCfg, validation.IsDNS1123Subdomain},
	} {
		if f.value == "" {
			return usageError{fmt.Errorf("invalid %s: empty", f.flag)}
		}
		if msgs := f.check(f.value); len(msgs) > 0 {
			return usageError{fmt.Errorf("invalid %s: %q: %s", f.flag, f.value, strings.Join(msgs, "; "))}
		}
	}
	return nil
}

// certificateSource keeps the serving certificate in --cert-dir:
// certs.Manager (self-managed) and certs.Provided (cert-manager, secret).
type certificateSource interface {
	// Ensure puts a certificate the API server can verify in place, or
	// says why it cannot.
	Ensure(ctx context.Context) error
	// Start follows changes until ctx ends (a controller-runtime Runnable).
	Start(ctx context.Context) error
	// Ready fails until a certificate has been written.
	Ready(*http.Request) error
}

// newCertificateSource returns the source of cfg.certMode, or nil for
// "files", where someone else writes --cert-dir.
func newCertificateSource(cfg webhookConfig, restCfg *rest.Config, log logr.Logger) (certificateSource, error) {
	if cfg.certMode == certModeFiles {
		return nil, nil
	}
	// Direct reads, no cache: a cache would list every Secret in the
	// namespace, which the RBAC rightly refuses.
	c, err := client.NewWithWatch(restCfg, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("create certificate client: %w", err)
	}
	log = log.WithName("certs").WithValues("mode", cfg.certMode)
	switch cfg.certMode {
	case certModeSelfManaged:
		return certs.NewManager(c, certs.Options{
			Namespace: cfg.namespace, SecretName: cfg.certSecret, ServiceName: cfg.serviceName, CertDir: cfg.certDir,
			Mutating: cfg.mutatingCfg, Validating: cfg.validatingCfg, Log: log,
		})
	default: // cert-manager fills the Secret the user would otherwise provide
		return certs.NewProvided(c, certs.ProvidedOptions{
			Namespace: cfg.namespace, SecretName: cfg.certSecret, ServiceName: cfg.serviceName, CertDir: cfg.certDir, Log: log,
		})
	}
}

// firstCertificate calls ensure until it succeeds, retrying with backoff
// (a Secret cert-manager has not issued yet, an API server still starting)
// for at most limit, and then returns the last reason.
func firstCertificate(ctx context.Context, ensure func(context.Context) error, log logr.Logger, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	backoff := 500 * time.Millisecond
	for {
		err := ensure(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("obtain serving certificate: %w", ctx.Err())
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("obtain serving certificate (gave up after %s): %w", limit, err)
		}
		log.Error(err, "no serving certificate yet; retrying", "retryIn", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("obtain serving certificate: %w", errors.Join(ctx.Err(), err))
		case <-t.C:
		}
		backoff = min(2*backoff, 8*time.Second)
	}
}

// checkCertDir loads the pair in dir, so that "files" mode names a missing
// or mismatched file before the server would fail on it.
func checkCertDir(dir string) error {
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile)); err != nil {
		return fmt.Errorf("load serving certificate from --cert-dir %s: %w", dir, err)
	}
	return nil
}
