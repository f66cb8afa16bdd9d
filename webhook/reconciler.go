package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/palisade-dev/palisade/rules"
)

// BaselineReconciler keeps every governed namespace's managed
// NetworkPolicies in place: it creates them for new and pre-existing
// namespaces and restores them after a deletion or an edit.
type BaselineReconciler struct {
	writer *baselineWriter
}

// Reconcile syncs one namespace's baseline.
func (r *BaselineReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ns := &corev1.Namespace{}
	if err := r.writer.opts.Client.Get(ctx, req.NamespacedName, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get namespace %s: %w", req.Name, err)
	}
	if _, err := r.writer.sync(ctx, ns); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, nil
}

func (r *BaselineReconciler) setup(mgr ctrl.Manager) error {
	toNamespace := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: namespaceKey(o.GetNamespace())}}
	})
	err := ctrl.NewControllerManagedBy(mgr).
		Named("baseline").
		For(&corev1.Namespace{}).
		Watches(&networkingv1.NetworkPolicy{}, toNamespace, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return rules.IsManaged(o)
		}))).
		Complete(r)
	if err != nil {
		return fmt.Errorf("set up baseline reconciler: %w", err)
	}
	return nil
}
