package certs

import (
	"testing"
)

// FuzzInspect feeds arbitrary Secret content to the self-managed mode's
// reader and planner. Whatever is in the Secret, they must not panic, and
// content they accept as is must serve. (Settling generates keys, too
// slow to fuzz; TestSettleRepairsAnything covers it on the seeds.)
func FuzzInspect(f *testing.F) {
	p := testPolicy()
	host := p.dnsNames[0]
	m, err := apply(stepRegenerate, inspection{}, t0, p)
	if err != nil {
		f.Fatal(err)
	}
	d := m.secretData()
	f.Add(d[KeyCA], d[KeyCAKey], d[KeyCert], d[KeyKey], "2030-01-01T00:00:00Z")
	f.Add(d[KeyCA], d[KeyKey], d[KeyCert], d[KeyCAKey], "")
	f.Add(append(d[KeyCA], d[KeyCert]...), d[KeyCAKey], d[KeyCA], d[KeyKey], "bad")
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte{}, []byte("x"), []byte{}, "")
	f.Fuzz(func(t *testing.T, ca, caKey, cert, key []byte, since string) {
		data := map[string][]byte{KeyCA: ca, KeyCAKey: caKey, KeyCert: cert, KeyKey: key}
		in := inspect(true, data, map[string]string{AnnotationCATrustedSince: since}, host, t0)
		if d := decide(in, t0, p); d.step == stepKeep {
			if in.caErr != nil || in.servingErr != nil || in.serving == nil {
				t.Fatalf("kept content that does not serve: %v %v", in.caErr, in.servingErr)
			}
			if d.next.IsZero() || !d.next.After(t0) {
				t.Fatalf("kept content with next check %s, not after now", d.next)
			}
		}
	})
}
