package webhook

import (
	"fmt"
	"net/http"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Register installs the admission paths on mgr's webhook server and the
// baseline reconciler on mgr. opts is validated first; nothing is
// registered when it is invalid.
func Register(mgr ctrl.Manager, opts Options) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	d := newDecider(&opts, admission.NewDecoder(mgr.GetScheme()))
	writer := &baselineWriter{opts: &opts}
	ns := namespaceJudge{d}
	pods := podJudge{decider: d, baseline: writer}
	paths := map[string]http.Handler{
		PathMutateNamespaces:      d.webhook("mutate-namespaces", false, ns.mutate),
		PathValidateNamespaces:    d.webhook("validate-namespaces", true, ns.validate),
		PathMutatePods:            d.webhook("mutate-pods", false, pods.mutate),
		PathValidatePods:          d.webhook("validate-pods", true, pods.validate),
		PathValidateWorkloads:     d.webhook("validate-workloads", true, workloadJudge{d}.validate),
		PathValidateNetworkPolicy: d.webhook("validate-networkpolicies", true, netpolJudge{d}.validate),
	}
	srv := mgr.GetWebhookServer()
	for path, h := range paths {
		srv.Register(path, h)
	}
	if err := (&BaselineReconciler{writer: writer}).setup(mgr); err != nil {
		return fmt.Errorf("register webhook: %w", err)
	}
	return nil
}

// webhook serves judge at one path, behind the HTTP guard.
func (d *decider) webhook(name string, validating bool, judge judgeFunc) http.Handler {
	wh := &admission.Webhook{Handler: d.handler(name, validating, judge)}
	wh.WithRecoverPanic(true)
	return guardHTTP(wh)
}
