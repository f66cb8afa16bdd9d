package enforcer

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsclient "k8s.io/client-go/kubernetes/typed/apps/v1"
	"k8s.io/client-go/rest"

	"github.com/palisade-dev/palisade/enforcer/datapath"
)

// uninstalling decides, as the agent stops, whether Palisade is leaving
// the node: only when its own DaemonSet is gone or being deleted (helm
// uninstall deletes it before its pods). A rolling update, a deleted pod
// or a drained node leave the DaemonSet in place. Anything uncertain —
// no DaemonSet configured, an API server that cannot be reached or
// refuses — answers no, with the reason: stale programs can be removed
// by hand, a lapse in enforcement cannot be undone.
func (a *Agent) uninstalling() (bool, string) {
	name, ns := a.opts.DaemonSetName, a.opts.DaemonSetNamespace
	if name == "" {
		return false, "no DaemonSet configured to tell an uninstall from a restart"
	}
	cfg := rest.CopyConfig(a.cfg)
	cfg.Timeout = a.opts.UninstallCheckTimeout
	c, err := appsclient.NewForConfig(cfg)
	if err != nil {
		return false, fmt.Sprintf("cannot ask for DaemonSet %s/%s: %v", ns, name, err)
	}
	// The run's context has ended; this question gets its own.
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.UninstallCheckTimeout)
	defer cancel()
	ds, err := c.DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return true, fmt.Sprintf("DaemonSet %s/%s is gone", ns, name)
	case err != nil:
		return false, fmt.Sprintf("cannot tell an uninstall from a restart: get DaemonSet %s/%s: %v", ns, name, err)
	case ds.DeletionTimestamp != nil:
		return true, fmt.Sprintf("DaemonSet %s/%s is being deleted", ns, name)
	}
	return false, fmt.Sprintf("DaemonSet %s/%s is in place (an upgrade or a restart)", ns, name)
}

// release hands the node over as the agent stops: the pins stay for the
// next agent, unless Palisade is being uninstalled.
func (a *Agent) release(dp *datapath.Datapath) {
	log := a.opts.Logger
	remove, why := a.uninstalling()
	if !remove {
		log.Info("enforcer stopped; pinned maps and links keep enforcing the last state", "reason", why)
		return
	}
	if err := dp.Remove(); err != nil {
		log.Error("enforcer stopped; remove its datapath (run `palisade enforcer cleanup` on the node)", "reason", why, "error", err)
		return
	}
	log.Info("enforcer stopped and took its datapath off the node", "reason", why, "pinDir", dp.PinDir())
}
