package certs

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
)

// Defaults of the self-managed mode. A CA outlives many serving
// certificates, so a rotated CA overlaps the old one for long enough that
// every leaf the old one signed has expired before it leaves the bundle.
const (
	DefaultCAValidity       = 5 * 365 * 24 * time.Hour // 5 years
	DefaultServingValidity  = 365 * 24 * time.Hour     // 1 year
	DefaultPropagationDelay = 10 * time.Second
	DefaultResyncInterval   = time.Minute
)

// Options configures the self-managed mode.
type Options struct {
	// Namespace is Palisade's namespace: the Secret and the Service live
	// there. Required.
	Namespace string
	// SecretName is the kubernetes.io/tls Secret holding the CA and the
	// serving certificate. Required.
	SecretName string
	// ServiceName is the webhook Service; the certificate covers its DNS
	// names (DNSNames). Required.
	ServiceName string
	// CertDir receives tls.crt and tls.key for the webhook server. Required.
	CertDir string
	// Mutating and Validating name the webhook configurations whose
	// webhooks get the CA bundle. Empty: no configuration of that kind.
	Mutating, Validating string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// CAValidity defaults to DefaultCAValidity.
	CAValidity time.Duration
	// ServingValidity defaults to DefaultServingValidity.
	ServingValidity time.Duration
	// RenewBefore: the serving certificate is reissued when less than this
	// is left of it. Default ServingValidity/3 (renewal at 2/3 of its life).
	RenewBefore time.Duration
	// CARenewBefore: a new CA is added (and starts signing) when less than
	// this is left of the current one. Default CAValidity/3. Must exceed
	// RenewBefore.
	CARenewBefore time.Duration
	// PropagationDelay is how long a new CA must have been in the bundle
	// before a routine reissue serves a leaf it signed, so that every API
	// server has seen the bundle. Default DefaultPropagationDelay.
	PropagationDelay time.Duration
	// ResyncInterval is how often Run re-checks without a trigger.
	// Default DefaultResyncInterval.
	ResyncInterval time.Duration
	// Log defaults to a discarding logger.
	Log logr.Logger
}

func (o *Options) complete() error {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"Namespace", o.Namespace}, {"SecretName", o.SecretName}, {"ServiceName", o.ServiceName}, {"CertDir", o.CertDir},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("check certificate options: %v required", missing)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	if o.CAValidity == 0 {
		o.CAValidity = DefaultCAValidity
	}
	if o.ServingValidity == 0 {
		o.ServingValidity = DefaultServingValidity
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = o.ServingValidity / 3
	}
	if o.CARenewBefore == 0 {
		o.CARenewBefore = o.CAValidity / 3
	}
	if o.PropagationDelay == 0 {
		o.PropagationDelay = DefaultPropagationDelay
	}
	if o.ResyncInterval == 0 {
		o.ResyncInterval = DefaultResyncInterval
	}
	var errs []error
	if o.CAValidity < 0 || o.ServingValidity < 0 || o.RenewBefore < 0 || o.CARenewBefore < 0 || o.PropagationDelay < 0 || o.ResyncInterval < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if o.RenewBefore >= o.ServingValidity {
		errs = append(errs, fmt.Errorf("RenewBefore %s must be shorter than ServingValidity %s", o.RenewBefore, o.ServingValidity))
	}
	if o.CARenewBefore >= o.CAValidity {
		errs = append(errs, fmt.Errorf("CARenewBefore %s must be shorter than CAValidity %s", o.CARenewBefore, o.CAValidity))
	}
	if o.CARenewBefore <= o.RenewBefore {
		// Otherwise a leaf cut short by its CA's end would be due for
		// renewal the moment it is issued.
		errs = append(errs, fmt.Errorf("CARenewBefore %s must exceed RenewBefore %s", o.CARenewBefore, o.RenewBefore))
	}
	if len(errs) > 0 {
		return fmt.Errorf("check certificate options: %w", errors.Join(errs...))
	}
	return nil
}

func (o *Options) policy() policy {
	return policy{
		caValidity:      o.CAValidity,
		servingValidity: o.ServingValidity,
		renewBefore:     o.RenewBefore,
		caRenewBefore:   o.CARenewBefore,
		propagation:     o.PropagationDelay,
		caCommonName:    "palisade-webhook-ca." + o.Namespace,
		dnsNames:        DNSNames(o.ServiceName, o.Namespace),
	}
}
