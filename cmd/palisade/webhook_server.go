package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
)

// Values of --client-auth.
const (
	clientAuthRequired = "required"
	clientAuthNone     = "none"
)

// validateServerFlags checks the admission server's and the metrics
// endpoint's flags before anything starts.
func validateServerFlags(cfg webhookConfig) error {
	switch cfg.clientAuth {
	case clientAuthRequired:
		if cfg.clientCAFile == "" {
			return usageError{fmt.Errorf("--client-ca-file: required with --client-auth=required: the CA that signed the API server's webhook client certificate (kube-apiserver --admission-control-config-file; README: Install); --client-auth=none accepts any caller")}
		}
	case clientAuthNone:
		if cfg.clientCAFile != "" || len(cfg.clientNames) > 0 {
			return usageError{fmt.Errorf("--client-auth=none: --client-ca-file and --client-allowed-names would not be used; drop them or use --client-auth=required")}
		}
	default:
		return usageError{fmt.Errorf("invalid --client-auth: %q is not one of %s, %s", cfg.clientAuth, clientAuthRequired, clientAuthNone)}
	}
	for _, n := range cfg.clientNames {
		if strings.TrimSpace(n) == "" {
			return usageError{fmt.Errorf("invalid --client-allowed-names: an empty name")}
		}
	}
	if cfg.maxConcurrent < 1 {
		return usageError{fmt.Errorf("invalid --max-concurrent-requests %d: want at least 1", cfg.maxConcurrent)}
	}
	if cfg.readTimeout <= 0 {
		return usageError{fmt.Errorf("invalid --read-timeout %s: want more than 0", cfg.readTimeout)}
	}
	if cfg.metricsAddr != "0" {
		if _, _, err := net.SplitHostPort(cfg.metricsAddr); err != nil {
			return usageError{fmt.Errorf("invalid --metrics-bind-address %q: %w", cfg.metricsAddr, err)}
		}
	}
	return nil
}

// checkClientCA loads --client-ca-file, so that a missing or empty file
// stops the process with the flag's name before it serves.
func checkClientCA(path string) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return usageError{fmt.Errorf("--client-ca-file: %w", err)}
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return usageError{fmt.Errorf("--client-ca-file %s: no PEM certificate in it", path)}
	}
	return nil
}
