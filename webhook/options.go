package webhook

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/audit"
	"github.com/palisade-dev/palisade/rules"
)

// DefaultNamespace is Palisade's own namespace unless configured otherwise.
const DefaultNamespace = "palisade-system"

// NamespaceControllerUser deletes every object of a terminating namespace;
// managed baseline policies must not stand in its way.
const NamespaceControllerUser = "system:serviceaccount:kube-system:namespace-controller"

// CustomRuleReviewer judges a request against organisation-specific rules
// (Gatekeeper ConstraintTemplates evaluated in-process). It must be safe for
// concurrent use.
type CustomRuleReviewer interface {
	Review(ctx context.Context, req *admissionv1.AdmissionRequest, ns *corev1.Namespace) ([]rules.Violation, error)
}

// Options configures the admission handlers and the baseline reconciler.
type Options struct {
	// Evaluator judges objects against the labeling standard. Required.
	Evaluator *rules.Evaluator
	// Client reads Namespaces and writes baseline NetworkPolicies. Required.
	Client client.Client
	// APIReader reads past the cache, for a namespace created a moment ago.
	// Default: Client.
	APIReader client.Reader
	// Recorder writes one decision record per admission decision.
	// Default: a Recorder without sinks (records nothing).
	Recorder *audit.Recorder
	// Namespace is Palisade's own namespace, never governed. Default DefaultNamespace.
	Namespace string
	// ServiceAccount is the user name Palisade acts as, the only one
	// allowed to write managed policies, e.g.
	// "system:serviceaccount:palisade-system:palisade-webhook". Required.
	ServiceAccount string
	// Events, if set, receives a Warning event on the namespace for every
	// denial. Default: none.
	Events events.EventRecorder
	// Metrics, if set, counts requests, latency and violations. Default: none.
	Metrics *Metrics
	// CustomRules, if set, is consulted for every governed request after
	// the standard. Default: none.
	CustomRules CustomRuleReviewer
	// Log defaults to a discarding logger.
	Log logr.Logger
}

func (o *Options) validate() error {
	var errs []error
	if o.Evaluator == nil {
		errs = append(errs, errors.New("evaluator is required"))
	}
	if o.Client == nil {
		errs = append(errs, errors.New("client is required"))
	}
	if o.ServiceAccount == "" {
		errs = append(errs, errors.New("service account is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("check webhook options: %w", err)
	}
	return nil
}

func (o *Options) defaults() error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.APIReader == nil {
		o.APIReader = o.Client
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Recorder == nil {
		r, err := audit.NewRecorder(audit.RecorderOptions{})
		if err != nil {
			return fmt.Errorf("create decision recorder: %w", err)
		}
		o.Recorder = r
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	return nil
}

// isSystem reports whether namespace ns is never governed.
func (o *Options) isSystem(ns string) bool {
	if ns == o.Namespace {
		return true
	}
	for _, s := range SystemNamespaces {
		if ns == s {
			return true
		}
	}
	return false
}
