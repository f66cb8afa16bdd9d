package webhook

import (
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/runtime"
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
	paths, writer := handlers(&opts, mgr.GetScheme())
	srv := mgr.GetWebhookServer()
	for path, h := range paths {
		srv.Register(path, h)
	}
	if err := (&BaselineReconciler{writer: writer}).setup(mgr); err != nil {
		return fmt.Errorf("register webhook: %w", err)
	}
	return nil
}

// Handlers returns the admission handler of every path, for serving
// without a manager (benchmarks, embedding). The baseline reconciler is
// not included.
func Handlers(opts Options, scheme *runtime.Scheme) (map[string]http.Handler, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	paths, _ := handlers(&opts, scheme)
	return paths, nil
}

func handlers(opts *Options, scheme *runtime.Scheme) (map[string]http.Handler, *baselineWriter) {
	d := newDecider(opts, admission.NewDecoder(scheme))
	writer := &baselineWriter{opts: opts}
	ns := namespaceJudge{d}
	pods := podJudge{decider: d, baseline: writer}
	return map[string]http.Handler{
		PathMutateNamespaces:      d.webhook("mutate-namespaces", false, ns.mutate),
		PathValidateNamespaces:    d.webhook("validate-namespaces", true, ns.validate),
		PathMutatePods:            d.webhook("mutate-pods", false, pods.mutate),
		PathValidatePods:          d.webhook("validate-pods", true, pods.validate),
		PathValidateWorkloads:     d.webhook("validate-workloads", true, workloadJudge{d}.validate),
		PathValidateNetworkPolicy: d.webhook("validate-networkpolicies", true, netpolJudge{d}.validate),
	}, writer
}

// webhook serves judge at one path, behind the HTTP guard.
func (d *decider) webhook(name string, validating bool, judge judgeFunc) http.Handler {
	wh := &admission.Webhook{Handler: d.handler(name, validating, judge)}
	wh.WithRecoverPanic(true)
	return guardHTTP(wh)
}
