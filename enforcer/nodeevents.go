package enforcer

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"

	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// eventController is the events' reportingController.
const eventController = "palisade.dev/enforcer"

// nodeEvents reports the datapath's trouble as Events on the Node
// (events.k8s.io/v1; a cluster-scoped object's Events land in the default
// namespace), where `kubectl describe node` shows them next to the
// kubelet's. Each condition is reported when it starts or changes, not on
// every retry.
type nodeEvents struct {
	recorder events.EventRecorder
	node     *corev1.ObjectReference
	stop     func()

	// failing is the failure last reported; owned by the loop goroutine.
	failing string
}

// newNodeEvents starts a broadcaster towards the API server; stop flushes
// nothing and ends it.
func newNodeEvents(ctx context.Context, cfg *rest.Config, node string) (*nodeEvents, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create event client: %w", err)
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	if err := b.StartRecordingToSinkWithContext(ctx); err != nil {
		return nil, fmt.Errorf("start event recorder: %w", err)
	}
	return &nodeEvents{
		recorder: b.NewRecorder(scheme.Scheme, eventController),
		// The kubelet's convention: a Node's events name its UID as its name.
		node: &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: node, UID: types.UID(node)},
		stop: b.Shutdown,
	}, nil
}

// syncFailed reports a failed Sync and the pods it left isolated.
func (e *nodeEvents) syncFailed(err error, isolated []policy.PodRef) {
	if e == nil || err.Error() == e.failing {
		return
	}
	msg := err.Error()
	e.failing = msg
	reason := "SyncFailed"
	if isMapFull(err) {
		reason = "MapFull"
	}
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, reason, "Sync",
		"%s; %d pods isolated until a sync succeeds%s", truncate(msg, 600), len(isolated), podList(isolated))
}

// syncRecovered reports the first successful Sync after failures.
func (e *nodeEvents) syncRecovered() {
	if e == nil || e.failing == "" {
		return
	}
	e.failing = ""
	e.recorder.Eventf(e.node, nil, corev1.EventTypeNormal, "SyncRecovered", "Sync", "policy state enforced again; no pod is held isolated")
}

// mapFilling reports a state map past the warning ratio, or needing more
// than it holds.
func (e *nodeEvents) mapFilling(name string, f datapath.MapFill) {
	if e == nil {
		return
	}
	e.recorder.Eventf(e.node, nil, corev1.EventTypeWarning, "MapFilling", "Sync",
		"datapath map %s: %d entries in use, %d needed, capacity %d; grow it (%s) before it is full", name, f.Entries, f.Wanted, f.Max, mapFlag(name))
}

func podList(pods []policy.PodRef) string {
	if len(pods) == 0 {
		return ""
	}
	var names []string
	for i, p := range pods {
		if i == 10 {
			names = append(names, fmt.Sprintf("and %d more", len(pods)-10))
			break
		}
		names = append(names, p.String())
	}
	return ": " + strings.Join(names, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
