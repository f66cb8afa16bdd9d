package enforcer

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// watcher caches the objects the compiler needs and reports every
// relevant change to a changeSet.
type watcher struct {
	cache   cache.Cache
	node    string
	readIPs bool // follow the Node object's addresses
}

func newWatcher(cfg *rest.Config, node string, readHostIPs bool) (*watcher, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("build scheme: %w", err)
	}
	if err := networkingv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("build scheme: %w", err)
	}
	// The compiler copies nothing it is given into its State and never
	// writes to its input, so lists may hand out the cached objects.
	noCopy := true
	byObject := map[client.Object]cache.ByObject{
		&corev1.Pod{}:                 {Transform: transformPod, UnsafeDisableDeepCopy: &noCopy},
		&corev1.Namespace{}:           {Transform: transformNamespace, UnsafeDisableDeepCopy: &noCopy},
		&networkingv1.NetworkPolicy{}: {Transform: transformPolicy, UnsafeDisableDeepCopy: &noCopy},
	}
	if readHostIPs {
		byObject[&corev1.Node{}] = cache.ByObject{Transform: transformNode, Field: fields.OneTermEqualSelector("metadata.name", node)}
	}
	c, err := cache.New(cfg, cache.Options{
		Scheme:                      scheme,
		ByObject:                    byObject,
		DefaultTransform:            cache.TransformStripManagedFields(),
		ReaderFailOnMissingInformer: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create object cache: %w", err)
	}
	return &watcher{cache: c, node: node, readIPs: readHostIPs}, nil
}

// objects are the kinds the watcher caches, in the order they are
// listed (none depends on another).
func (w *watcher) objects() []client.Object {
	objs := []client.Object{&corev1.Namespace{}, &networkingv1.NetworkPolicy{}, &corev1.Pod{}}
	if w.readIPs {
		objs = append(objs, &corev1.Node{})
	}
	return objs
}

// watch registers change handlers; call before start.
func (w *watcher) watch(ctx context.Context, changes *changeSet) error {
	h := toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { changes.mark(time.Now()) },
		UpdateFunc: func(o, n any) {
			if relevantChange(o, n) {
				changes.mark(time.Now())
			}
		},
		DeleteFunc: func(any) { changes.mark(time.Now()) },
	}
	for _, obj := range w.objects() {
		inf, err := w.cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(h); err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
	}
	return nil
}

// snapshot is one consistent-enough read of the caches: each list is
// atomic, and a change that lands between lists triggers another
// compilation anyway.
type snapshot struct {
	cluster *policy.Cluster
	hostIPs []netip.Addr
	pods    map[netip.Addr]policy.PodRef
}

func (w *watcher) snapshot(ctx context.Context) (*snapshot, error) {
	var nsList corev1.NamespaceList
	var npList networkingv1.NetworkPolicyList
	var podList corev1.PodList
	for _, l := range []client.ObjectList{&nsList, &npList, &podList} {
		if err := w.cache.List(ctx, l); err != nil {
			return nil, fmt.Errorf("list %T from cache: %w", l, err)
		}
	}
	s := &snapshot{
		cluster: &policy.Cluster{Namespaces: nsList.Items, Policies: npList.Items, Pods: podList.Items},
		pods:    make(map[netip.Addr]policy.PodRef, len(podList.Items)),
	}
	for i := range podList.Items {
		p := &podList.Items[i]
		if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ref := policy.PodRef{Namespace: p.Namespace, Name: p.Name}
		add := func(text string) {
			if a, err := netip.ParseAddr(text); err == nil {
				s.pods[a.Unmap()] = ref
			}
		}
		add(p.Status.PodIP)
		for _, ip := range p.Status.PodIPs {
			add(ip.IP)
		}
	}
	if w.readIPs {
		var nodes corev1.NodeList
		if err := w.cache.List(ctx, &nodes); err != nil {
			return nil, fmt.Errorf("list nodes from cache: %w", err)
		}
		for _, n := range nodes.Items {
			if n.Name == w.node {
				s.hostIPs = nodeAddresses(&n)
			}
		}
	}
	return s, nil
}

// nodeAddresses returns a Node's internal and external IPs.
func nodeAddresses(n *corev1.Node) []netip.Addr {
	var out []netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && !slices.Contains(out, ip.Unmap()) {
			out = append(out, ip.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// changeSet records that the cluster changed since the last enforced
// State, and since when: the start of the change → enforced latency.
type changeSet struct {
	mu    sync.Mutex
	since time.Time
	wake  chan struct{}
}

func newChangeSet() *changeSet { return &changeSet{wake: make(chan struct{}, 1)} }

// mark records a change seen at now.
func (c *changeSet) mark(now time.Time) {
	c.mu.Lock()
	if c.since.IsZero() || now.Before(c.since) {
		c.since = now
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take returns when the pending changes started (zero if none) and
// clears them.
func (c *changeSet) take() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	since := c.since
	c.since = time.Time{}
	return since
}

// restore puts back changes a failed Sync did not enforce.
func (c *changeSet) restore(since time.Time) {
	if since.IsZero() {
		return
	}
	c.mu.Lock()
	if c.since.IsZero() || since.Before(c.since) {
		c.since = since
	}
	c.mu.Unlock()
}
