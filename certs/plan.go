package certs

import (
	"errors"
	"fmt"
	"time"
)

// step is one change to the Secret's content.
type step int

const (
	stepKeep           step = iota // nothing to do until decision.next
	stepRegenerate                 // new CA and serving certificate
	stepRotateCA                   // new signing CA; the old one stays trusted; serving kept
	stepReissueServing             // new serving certificate from the signing CA
	stepPruneBundle                // drop expired CAs from the bundle
)

func (s step) String() string {
	return [...]string{"keep", "regenerate", "rotate CA", "reissue serving certificate", "prune CA bundle"}[s]
}

// policy is when certificates are renewed.
type policy struct {
	caValidity, servingValidity time.Duration
	renewBefore, caRenewBefore  time.Duration
	propagation                 time.Duration
	caCommonName                string
	dnsNames                    []string
}

// decision is the next step for a Secret and why; for stepKeep, next is
// when the content needs looking at again (zero: no deadline).
type decision struct {
	step   step
	reason string
	next   time.Time
}

// decide picks the one step that a Secret needs first at now. Applying
// steps until it says keep converges: every step removes its own cause.
func decide(in inspection, now time.Time, p policy) decision {
	if in.caErr != nil {
		return decision{step: stepRegenerate, reason: in.caErr.Error()}
	}
	ca := in.m.bundle[0]
	caDue := ca.NotAfter.Add(-p.caRenewBefore)
	if !now.Before(caDue) {
		return decision{step: stepRotateCA, reason: fmt.Sprintf("CA %q expires at %s", ca.Subject.CommonName, stamp(ca.NotAfter))}
	}
	if in.servingErr != nil {
		return decision{step: stepReissueServing, reason: in.servingErr.Error()}
	}
	next := caDue
	for _, old := range in.m.bundle[1:] {
		if now.After(old.NotAfter) {
			return decision{step: stepPruneBundle, reason: fmt.Sprintf("CA %q in %s expired at %s", old.Subject.CommonName, KeyCA, stamp(old.NotAfter))}
		}
		next = earliest(next, old.NotAfter.Add(time.Second))
	}
	servingDue := in.serving.NotAfter.Add(-p.renewBefore)
	if now.Before(servingDue) {
		return decision{step: stepKeep, next: earliest(next, servingDue)}
	}
	// A leaf from a CA that entered the bundle a moment ago could reach an
	// API server that has not seen the new bundle yet; the current leaf is
	// still valid, so waiting costs nothing.
	if ready := in.m.trustedSince.Add(p.propagation); now.Before(ready) {
		return decision{step: stepKeep, next: earliest(next, ready)}
	}
	return decision{step: stepReissueServing, reason: fmt.Sprintf("serving certificate expires at %s", stamp(in.serving.NotAfter))}
}

// apply performs s on what in found, returning the Secret's new content.
func apply(s step, in inspection, now time.Time, p policy) (material, error) {
	m := in.m
	switch s {
	case stepRegenerate:
		ca, err := newCA(caName(p, now), now, p.caValidity)
		if err != nil {
			return m, err
		}
		serving, err := newServing(ca, p.dnsNames, now, p.servingValidity)
		if err != nil {
			return m, err
		}
		return material{
			bundle:        stillTrusted(ca.Cert, in.oldBundle, now),
			caKey:         ca.Key,
			caKeyPEM:      ca.KeyPEM,
			servingPEM:    serving.CertPEM,
			servingKeyPEM: serving.KeyPEM,
			trustedSince:  now,
			generation:    m.generation + 1,
		}, nil
	case stepRotateCA:
		ca, err := newCA(caName(p, now), now, p.caValidity)
		if err != nil {
			return m, err
		}
		m.generation++
		m.bundle = stillTrusted(ca.Cert, m.bundle, now)
		m.caKey, m.caKeyPEM, m.trustedSince = ca.Key, ca.KeyPEM, now
		return m, nil
	case stepReissueServing:
		serving, err := newServing(m.signer(), p.dnsNames, now, p.servingValidity)
		if err != nil {
			return m, err
		}
		m.servingPEM, m.servingKeyPEM = serving.CertPEM, serving.KeyPEM
		return m, nil
	case stepPruneBundle:
		m.bundle = stillTrusted(m.bundle[0], m.bundle[1:], now)
		m.generation++
		return m, nil
	}
	return m, fmt.Errorf("apply step %d: unknown step", s)
}

// caName tells CA generations apart in logs and in openssl output.
func caName(p policy, now time.Time) string {
	return p.caCommonName + "@" + now.UTC().Format("20060102T150405Z")
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// settle applies force's step (if any, and not stepKeep) and then every
// step decide asks for, until it says keep. generation gives the highest
// bundle generation already published, read only when something changes.
// It returns the settled inspection, what it changed and why, and when to
// look again.
func settle(in inspection, now time.Time, p policy, host string, force func(inspection) step, generation func() (int64, error)) (inspection, []string, time.Time, error) {
	var reasons []string
	for i := 0; ; i++ {
		if i == 8 {
			return in, reasons, time.Time{}, fmt.Errorf("no stable content after %v", reasons)
		}
		s, reason := stepKeep, "forced"
		if force != nil {
			s = force(in)
			force = nil
		}
		var next time.Time
		if s == stepKeep {
			d := decide(in, now, p)
			s, reason, next = d.step, d.reason, d.next
		}
		if s == stepKeep {
			return in, reasons, next, nil
		}
		if len(reasons) == 0 && generation != nil {
			// Continue the count of whatever bundle is out there.
			high, err := generation()
			if err != nil {
				return in, reasons, time.Time{}, err
			}
			in.m.generation = max(in.m.generation, high)
		}
		mat, err := apply(s, in, now, p)
		if err != nil {
			return in, reasons, time.Time{}, err
		}
		reasons = append(reasons, s.String()+" ("+reason+")")
		in = inspect(true, mat.secretData(), mat.annotations(), host, now)
		if in.caErr != nil || in.servingErr != nil {
			return in, reasons, time.Time{}, fmt.Errorf("%s produced unusable content: %w", s, errors.Join(in.caErr, in.servingErr))
		}
	}
}
