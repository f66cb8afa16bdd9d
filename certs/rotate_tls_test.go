package certs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"

	"github.com/palisade-dev/palisade/certs"
)

// tlsServer serves handshakes with whatever certwatcher has loaded from
// dir, as controller-runtime's webhook server does.
func tlsServer(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	cw, err := certwatcher.New(filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile))
	if err != nil {
		t.Fatalf("certwatcher: %v", err)
	}
	go cw.Start(ctx) //nolint:errcheck // ends with ctx
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: cw.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // best effort
				conn.(*tls.Conn).Handshake()                      //nolint:errcheck // the client judges
			}()
		}
	}()
	return ln.Addr().String()
}

// dialAsAPIServer connects as the API server would: trusting only the
// caBundle the validating configuration has right now, verifying the
// Service's name. It returns the leaf served.
func dialAsAPIServer(f *fixture, addr string) (*x509.Certificate, error) {
	bundles, err := f.currentBundles()
	if err != nil {
		return nil, err
	}
	var leaf *x509.Certificate
	for _, b := range bundles {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, errors.New("caBundle holds no certificate")
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
			RootCAs: pool, ServerName: certs.DNSNames(serviceName, f.ns)[0], MinVersion: tls.VersionTLS12,
		})
		if err != nil {
			return nil, err
		}
		leaf = conn.ConnectionState().PeerCertificates[0]
		conn.Close()
	}
	return leaf, nil
}

// TestRotationKeepsServing rotates CA and serving certificate while a TLS
// server reloads from the cert dir and a client, trusting only the bundle
// the API server holds at that moment, keeps connecting. Every handshake
// verifies, before, during and after, and the new certificate is served
// without a restart.
func TestRotationKeepsServing(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	o := f.options(dir)
	o.PropagationDelay = 300 * time.Millisecond
	m := newManager(t, f, o)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	before := f.secret(t)
	addr := tlsServer(t, ctx, dir)
	leaf, err := dialAsAPIServer(f, addr)
	if err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	if !bytes.Equal(leaf.Raw, firstCert(t, before.Data[certs.KeyCert]).Raw) {
		t.Fatal("server does not serve the secret's certificate")
	}

	// A client hammering the server through the rotation.
	var (
		handshakes atomic.Int64
		failures   []error
		mu         sync.Mutex
		probe      sync.WaitGroup
	)
	probeCtx, stopProbe := context.WithCancel(ctx)
	probe.Add(1)
	go func() {
		defer probe.Done()
		for probeCtx.Err() == nil {
			if _, err := dialAsAPIServer(f, addr); err != nil {
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
			}
			handshakes.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
	}()

	if err := m.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	after := assertPublished(t, f, dir, time.Now())
	if bytes.Equal(firstCert(t, after.Data[certs.KeyCA]).Raw, firstCert(t, before.Data[certs.KeyCA]).Raw) {
		t.Error("rotate kept the CA")
	}
	want := firstCert(t, after.Data[certs.KeyCert])
	waitFor(t, 20*time.Second, "the server to serve the rotated certificate", func() bool {
		leaf, err := dialAsAPIServer(f, addr)
		return err == nil && bytes.Equal(leaf.Raw, want.Raw)
	})
	stopProbe()
	probe.Wait()
	if handshakes.Load() < 10 {
		t.Errorf("only %d handshakes during the rotation", handshakes.Load())
	}
	for _, err := range failures {
		t.Errorf("handshake failed during rotation: %v", err)
	}
	// The old CA stays trusted for replicas that have not reloaded yet.
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(after.Data[certs.KeyCA]) {
		t.Fatal("bad bundle")
	} else if _, err := firstCert(t, before.Data[certs.KeyCert]).Verify(x509.VerifyOptions{
		Roots: pool, DNSName: certs.DNSNames(serviceName, f.ns)[0],
	}); err != nil {
		t.Errorf("old serving certificate no longer verifies against the new bundle: %v", err)
	}
}
