package certs

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func testPolicy() policy {
	o := Options{Namespace: "palisade-system", SecretName: "s", ServiceName: "palisade-webhook", CertDir: "d"}
	if err := o.complete(); err != nil {
		panic(err)
	}
	return o.policy()
}

// fresh returns settled content issued at now.
func fresh(t *testing.T, p policy, now time.Time) material {
	t.Helper()
	in, _, _, err := settle(inspect(false, nil, nil, p.dnsNames[0], now), now, p, p.dnsNames[0], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return in.m
}

func TestDecide(t *testing.T) {
	p := testPolicy()
	host := p.dnsNames[0]
	m := fresh(t, p, t0)
	servingDue := t0.Add(p.servingValidity - p.renewBefore)
	caDue := t0.Add(p.caValidity - p.caRenewBefore)

	mismatched := m.secretData()
	other := fresh(t, p, t0)
	mismatched[KeyKey] = other.servingKeyPEM
	badCAKey := m.secretData()
	badCAKey[KeyCAKey] = other.caKeyPEM

	// Content whose CA was rotated a moment ago, with a serving
	// certificate that is due.
	rotatedAt := servingDue.Add(time.Hour)
	rotated, err := apply(stepRotateCA, inspect(true, m.secretData(), m.annotations(), host, rotatedAt), rotatedAt, p)
	if err != nil {
		t.Fatal(err)
	}
	// Content still carrying an old CA whose time is over.
	withOld, err := apply(stepRotateCA, inspect(true, m.secretData(), m.annotations(), host, caDue), caDue, p)
	if err != nil {
		t.Fatal(err)
	}
	afterOld := t0.Add(p.caValidity + day)
	withOld, err = apply(stepReissueServing, inspect(true, withOld.secretData(), withOld.annotations(), host, afterOld), afterOld, p)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name       string
		exists     bool
		data       map[string][]byte
		ann        map[string]string
		now        time.Time
		want       step
		wantReason string
		wantNext   time.Time
	}{
		{name: "missing secret", now: t0, want: stepRegenerate, wantReason: "does not exist"},
		{name: "fresh", exists: true, data: m.secretData(), ann: m.annotations(), now: t0, want: stepKeep, wantNext: servingDue},
		{name: "just before serving renewal", exists: true, data: m.secretData(), ann: m.annotations(), now: servingDue.Add(-time.Second), want: stepKeep, wantNext: servingDue},
		{name: "serving renewal due", exists: true, data: m.secretData(), ann: m.annotations(), now: servingDue, want: stepReissueServing, wantReason: "serving certificate expires at"},
		{name: "serving expired", exists: true, data: m.secretData(), ann: m.annotations(), now: t0.Add(p.servingValidity + time.Second), want: stepReissueServing, wantReason: "expired at"},
		{name: "serving key mismatch", exists: true, data: mismatched, ann: m.annotations(), now: t0, want: stepReissueServing, wantReason: "tls.key does not match"},
		{name: "CA key mismatch", exists: true, data: badCAKey, ann: m.annotations(), now: t0, want: stepRegenerate, wantReason: "ca.key does not match"},
		{name: "empty secret", exists: true, data: map[string][]byte{}, now: t0, want: stepRegenerate, wantReason: "ca.crt"},
		{name: "CA renewal due", exists: true, data: m.secretData(), ann: m.annotations(), now: caDue, want: stepRotateCA, wantReason: "expires at"},
		{name: "CA expired", exists: true, data: m.secretData(), ann: m.annotations(), now: t0.Add(p.caValidity + time.Second), want: stepRegenerate, wantReason: "expired at"},
		{name: "new CA not yet propagated", exists: true, data: rotated.secretData(), ann: rotated.annotations(), now: rotatedAt.Add(time.Second), want: stepKeep, wantNext: rotatedAt.Add(p.propagation)},
		{name: "new CA propagated", exists: true, data: rotated.secretData(), ann: rotated.annotations(), now: rotatedAt.Add(p.propagation), want: stepReissueServing},
		{name: "old CA expired", exists: true, data: withOld.secretData(), ann: withOld.annotations(), now: afterOld, want: stepPruneBundle, wantReason: "expired at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(inspect(tc.exists, tc.data, tc.ann, host, tc.now), tc.now, p)
			if d.step != tc.want {
				t.Fatalf("step %s (%s), want %s", d.step, d.reason, tc.want)
			}
			if !strings.Contains(d.reason, tc.wantReason) {
				t.Errorf("reason %q, want it to contain %q", d.reason, tc.wantReason)
			}
			if !tc.wantNext.IsZero() && !d.next.Equal(tc.wantNext) {
				t.Errorf("next check %s, want %s", d.next, tc.wantNext)
			}
		})
	}
}

// TestTwelveYears runs the renewal policy over twelve years, a check every
// day, and asserts what the API server would see at every moment:
// the certificate being served verifies against the bundle in force, every
// new bundle still verifies the certificate served before it (so replicas
// that have not reloaded yet stay verifiable), and a leaf from a CA is
// served only once that CA has been in the bundle for PropagationDelay.
func TestTwelveYears(t *testing.T) {
	p := testPolicy()
	p.propagation = 36 * time.Hour // longer than a check interval, so the wait shows
	host := p.dnsNames[0]
	now := t0
	m := fresh(t, p, now)
	trustedAt := map[string]time.Time{string(m.bundle[0].Raw): now}
	served := leafOf(t, m)
	var servingRenewals, caRenewals, prunes int
	for end := t0.Add(12 * 365 * day); now.Before(end); now = now.Add(day) {
		in, reasons, _, err := settle(inspect(true, m.secretData(), m.annotations(), host, now), now, p, host, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", now, err)
		}
		for _, r := range reasons {
			switch {
			case strings.HasPrefix(r, stepReissueServing.String()):
				servingRenewals++
			case strings.HasPrefix(r, stepRotateCA.String()):
				caRenewals++
			case strings.HasPrefix(r, stepPruneBundle.String()):
				prunes++
			default:
				t.Fatalf("%s: unexpected change %s", now, r)
			}
		}
		next := in.m
		for _, c := range next.bundle {
			if _, ok := trustedAt[string(c.Raw)]; !ok {
				trustedAt[string(c.Raw)] = now
			}
		}
		// The previous leaf, still served by slow replicas, verifies
		// against the new bundle.
		if now.Before(served.NotAfter) {
			verifyAgainst(t, served, next.bundle, host, now, "previous leaf against new bundle")
		}
		leaf := leafOf(t, next)
		verifyAgainst(t, leaf, next.bundle, host, now, "served leaf")
		if !bytes.Equal(leaf.Raw, served.Raw) {
			issuer := issuerOf(t, leaf, next.bundle)
			if since := now.Sub(trustedAt[string(issuer.Raw)]); since < p.propagation && now.Before(served.NotAfter) {
				t.Fatalf("%s: leaf from a CA trusted only %s ago replaced a still-valid leaf", now, since)
			}
		}
		m, served = next, leaf
	}
	// 12 years: a leaf lives 8 months before renewal, a CA 40 months.
	if servingRenewals < 16 || servingRenewals > 20 {
		t.Errorf("%d serving renewals in 12 years, want about 18", servingRenewals)
	}
	if caRenewals != 3 || prunes != 3 {
		t.Errorf("%d CA renewals and %d prunes in 12 years, want 3 and 3", caRenewals, prunes)
	}
}

func leafOf(t *testing.T, m material) *x509.Certificate {
	t.Helper()
	certs, err := parseCertificates(m.servingPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func verifyAgainst(t *testing.T, leaf *x509.Certificate, bundle []*x509.Certificate, host string, now time.Time, what string) {
	t.Helper()
	pool := x509.NewCertPool()
	for _, c := range bundle {
		pool.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("%s: %s does not verify: %v", now, what, err)
	}
}

func issuerOf(t *testing.T, leaf *x509.Certificate, bundle []*x509.Certificate) *x509.Certificate {
	t.Helper()
	for _, c := range bundle {
		if leaf.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	t.Fatal("leaf has no issuer in the bundle")
	return nil
}

func TestOptionsRejectBadDurations(t *testing.T) {
	base := Options{Namespace: "n", SecretName: "s", ServiceName: "svc", CertDir: "d"}
	for _, tc := range []struct {
		name    string
		mutate  func(*Options)
		wantErr string
	}{
		{name: "missing names", mutate: func(o *Options) { o.Namespace, o.CertDir = "", "" }, wantErr: "[Namespace CertDir] required"},
		{name: "renew before longer than validity", mutate: func(o *Options) { o.ServingValidity, o.RenewBefore = day, 2*day }, wantErr: "RenewBefore 48h0m0s must be shorter than ServingValidity"},
		{name: "CA renewal inside serving renewal", mutate: func(o *Options) { o.CARenewBefore = time.Hour }, wantErr: "CARenewBefore 1h0m0s must exceed RenewBefore"},
		{name: "negative", mutate: func(o *Options) { o.PropagationDelay = -time.Second }, wantErr: "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mutate(&o)
			if err := o.complete(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
	o := base
	if err := o.complete(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if o.CAValidity != DefaultCAValidity || o.RenewBefore != DefaultServingValidity/3 || o.CARenewBefore != DefaultCAValidity/3 {
		t.Errorf("defaults %+v", o)
	}
}

// TestSettleRepairsAnything: whatever state a Secret is in, one settle
// ends in content that serves, without a second settle changing it.
func TestSettleRepairsAnything(t *testing.T) {
	p := testPolicy()
	host := p.dnsNames[0]
	m := fresh(t, p, t0)
	other := fresh(t, p, t0)
	good := m.secretData()
	for _, tc := range []struct {
		name string
		data map[string][]byte
	}{
		{name: "empty", data: map[string][]byte{}},
		{name: "keys swapped", data: map[string][]byte{KeyCA: good[KeyCA], KeyCAKey: good[KeyKey], KeyCert: good[KeyCert], KeyKey: good[KeyCAKey]}},
		{name: "leaf as CA", data: map[string][]byte{KeyCA: good[KeyCert], KeyCAKey: good[KeyKey], KeyCert: good[KeyCert], KeyKey: good[KeyKey]}},
		{name: "mixed generations", data: map[string][]byte{KeyCA: good[KeyCA], KeyCAKey: good[KeyCAKey], KeyCert: other.servingPEM, KeyKey: other.servingKeyPEM}},
		{name: "garbage", data: map[string][]byte{KeyCA: []byte("x"), KeyCAKey: []byte("y"), KeyCert: []byte("z"), KeyKey: nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, reasons, _, err := settle(inspect(true, tc.data, nil, host, t0), t0, p, host, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(reasons) == 0 {
				t.Fatal("nothing repaired")
			}
			again, more, _, err := settle(inspect(true, in.m.secretData(), in.m.annotations(), host, t0), t0, p, host, nil, nil)
			if err != nil || len(more) > 0 || again.servingErr != nil {
				t.Fatalf("second settle: %v %v %v", more, err, again.servingErr)
			}
		})
	}
}
