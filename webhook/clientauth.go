package webhook

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// clientAuth admits only callers presenting a client certificate the
// client CA signed for one of the allowed names: the API server, as
// configured by --admission-control-config-file. It answers in HTTP
// rather than failing the TLS handshake (the listener only requests a
// certificate), so that every refusal has a status and a reason, is
// counted, and is logged with the caller's address:
//
//	no certificate                 401
//	untrusted, expired, wrong use  403
//	signed, but not an allowed name 403
//
// A refused request never reaches a handler: nothing is judged, recorded
// or turned into an Event.
type clientAuth struct {
	caFile  string
	names   []string
	metrics *Metrics
	log     logr.Logger
	recheck time.Duration // how often the CA file is looked at

	mu      sync.Mutex
	pool    *x509.CertPool
	stamp   fileStamp
	checked time.Time
	// verified holds chains that verified against pool (cleared when it
	// changes): the API server keeps its connections and sends the same
	// chain on each, and a signature check costs ~0.1 ms per request.
	verified map[[sha256.Size]byte]time.Time // chain digest → leaf's NotAfter

	lastLog atomic.Int64 // unix nanos of the last refusal logged
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// caRecheck is how often the CA file is looked at for a rotation.
const caRecheck = 5 * time.Second

func newClientAuth(caFile string, names []string, m *Metrics, log logr.Logger) (*clientAuth, error) {
	a := &clientAuth{caFile: caFile, names: names, metrics: m, log: log, recheck: caRecheck}
	pool, stamp, err := loadCA(caFile)
	if err != nil {
		return nil, err
	}
	a.pool, a.stamp, a.checked = pool, stamp, time.Now()
	return a, nil
}

func loadCA(path string) (*x509.CertPool, fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("load client CA: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("load client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fileStamp{}, fmt.Errorf("load client CA %s: no PEM certificate in it", path)
	}
	return pool, fileStamp{fi.ModTime(), fi.Size()}, nil
}

// currentPool returns the CA pool, reloading the file when it changed (a
// rotated ConfigMap). A file that no longer loads keeps the last good
// pool: a half-written update must not open or close the door.
func (a *clientAuth) currentPool() *x509.CertPool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(a.checked) < a.recheck {
		return a.pool
	}
	a.checked = time.Now()
	fi, err := os.Stat(a.caFile)
	if err != nil || (fi.ModTime().Equal(a.stamp.mod) && fi.Size() == a.stamp.size) {
		return a.pool
	}
	pool, stamp, err := loadCA(a.caFile)
	if err != nil {
		a.log.Error(err, "client CA changed but does not load; keeping the previous one")
		return a.pool
	}
	a.pool, a.stamp, a.verified = pool, stamp, nil
	a.log.Info("client CA reloaded", "file", a.caFile)
	return a.pool
}

// maxVerified bounds the verified-chain cache; only chains that verify
// enter it, so only holders of the CA's certificates could fill it.
const maxVerified = 64

// chainDigest names the chain a connection presented.
func chainDigest(chain []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range chain {
		h.Write(c.Raw)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// verifyChain checks chain against the current CA, from the cache when
// this chain verified before and its leaf has not expired since.
func (a *clientAuth) verifyChain(chain []*x509.Certificate) error {
	pool := a.currentPool()
	d := chainDigest(chain)
	now := time.Now()
	a.mu.Lock()
	notAfter, ok := a.verified[d]
	a.mu.Unlock()
	if ok && now.Before(notAfter) {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: now,
	}); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pool != pool {
		return nil // rotated meanwhile: verified, but not cached against the new CA
	}
	if a.verified == nil || len(a.verified) >= maxVerified {
		a.verified = map[[sha256.Size]byte]time.Time{}
	}
	// The chain is valid until its first certificate expires.
	expiry := chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotAfter.Before(expiry) {
			expiry = c.NotAfter
		}
	}
	a.verified[d] = expiry
	return nil
}

// verify returns the HTTP status and refusal reason for r, or 0 when the
// caller is the API server.
func (a *clientAuth) verify(r *http.Request) (int, string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return http.StatusUnauthorized, RefusedNoCertificate, errors.New("no client certificate: only the API server may call this webhook (kube-apiserver --admission-control-config-file)")
	}
	leaf := r.TLS.PeerCertificates[0]
	if leaf.IsCA {
		// A CA is no client; presented as one, it would verify against
		// itself.
		return http.StatusForbidden, RefusedUntrustedCertificate, fmt.Errorf("client certificate %q is a CA certificate", leaf.Subject.CommonName)
	}
	if err := a.verifyChain(r.TLS.PeerCertificates); err != nil {
		return http.StatusForbidden, RefusedUntrustedCertificate, fmt.Errorf("client certificate %q not accepted: %w", leaf.Subject.CommonName, err)
	}
	if len(a.names) > 0 && !slices.Contains(a.names, leaf.Subject.CommonName) && !slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return slices.Contains(a.names, n) }) {
		return http.StatusForbidden, RefusedNameNotAllowed, fmt.Errorf("client certificate %q is not one of the allowed names", leaf.Subject.CommonName)
	}
	return 0, "", nil
}

// wrap refuses every request verify does not accept before next sees it.
func (a *clientAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, reason, err := a.verify(r)
		if status == 0 {
			next.ServeHTTP(w, r)
			return
		}
		a.metrics.refuse(reason)
		a.logRefusal(r, reason, err)
		http.Error(w, err.Error(), status)
	})
}

// logRefusal logs at most one refusal a second: a flood is counted in
// full but must not flood the log.
func (a *clientAuth) logRefusal(r *http.Request, reason string, err error) {
	now := time.Now().UnixNano()
	last := a.lastLog.Load()
	if now-last < int64(time.Second) || !a.lastLog.CompareAndSwap(last, now) {
		return
	}
	a.log.Info("refused a request that is not the API server's", "reason", reason, "remote", r.RemoteAddr, "path", r.URL.Path, "error", err.Error())
}
