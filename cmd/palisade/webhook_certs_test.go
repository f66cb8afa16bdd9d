package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
)

func TestFirstCertificate(t *testing.T) {
	notYet := errors.New("secret palisade-system/palisade-webhook-tls: not found")
	for _, tc := range []struct {
		name     string
		failures int // ensure fails this many times, then succeeds
		limit    time.Duration
		cancel   bool
		wantErr  string
		wantCall int
	}{
		{name: "at once", failures: 0, limit: time.Minute, wantCall: 1},
		{name: "after the Secret appears", failures: 2, limit: time.Minute, wantCall: 3},
		{name: "gives up naming the last reason", failures: 100, limit: 0, wantErr: "(gave up after 0s): secret palisade-system/palisade-webhook-tls: not found", wantCall: 1},
		{name: "stops when the process stops", failures: 100, limit: time.Minute, cancel: true, wantErr: "context canceled", wantCall: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			err := firstCertificate(ctx, func(context.Context) error {
				calls++
				if tc.cancel {
					cancel()
					return notYet
				}
				if calls <= tc.failures {
					return notYet
				}
				return nil
			}, logr.Discard(), tc.limit)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if calls != tc.wantCall {
				t.Errorf("%d calls, want %d", calls, tc.wantCall)
			}
		})
	}
}

func TestCheckCertDirNamesTheProblem(t *testing.T) {
	dir := t.TempDir()
	if err := checkCertDir(dir); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "tls.crt") {
		t.Errorf("empty dir: err = %v, want it to name %s and tls.crt", err, dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkCertDir(dir); err == nil {
		t.Error("junk accepted")
	}
}

// TestCertificateSourceByMode: each chart mode gets the certs type that
// serves it; "files" gets none (someone else writes --cert-dir).
func TestCertificateSourceByMode(t *testing.T) {
	restCfg := &rest.Config{Host: "https://127.0.0.1:1"} // never dialled here
	for mode, want := range map[string]string{
		"self-managed": "*certs.Manager",
		"cert-manager": "*certs.Provided",
		"secret":       "*certs.Provided",
		"files":        "<nil>",
	} {
		cfg := withCertDefaults(webhookConfig{namespace: "palisade-system", certDir: t.TempDir(), certMode: mode})
		src, err := newCertificateSource(cfg, restCfg, logr.Discard())
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if got := fmt.Sprintf("%T", src); got != want {
			t.Errorf("%s: source %s, want %s", mode, got, want)
		}
	}
}
