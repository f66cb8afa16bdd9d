package check

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// Cluster is the checker's compiled input.
type Cluster struct {
	// State is compiled with every pod local, as if one node ran them all.
	State *policy.State
	// Pods are the pods probes run between: every pod the State enforces,
	// sorted. Host-network and finished pods are not among them.
	Pods []policy.PodRef
	// Ports are the default probe ports: every port the policies name
	// (named ports resolved against the pods declaring them, both ends of
	// an endPort range) and every containerPort, sorted.
	Ports []Port
	// Ignored lists documents of other kinds, which the checker skips.
	Ignored []string
}

// Load reads manifests from files and directories (every *.yaml, *.yml
// and *.json below a directory) and compiles them. An error names the file
// and document and the object: unparsable documents, pods without
// addresses, objects defined twice, and policies the API server would
// reject all fail.
func Load(paths ...string) (*Cluster, error) {
	if len(paths) == 0 {
		return nil, errors.New("load manifests: no files given")
	}
	c, err := policy.LoadManifests(paths...)
	if err != nil {
		return nil, err
	}
	return compile(c)
}

// FromObjects compiles objects that did not come from files; errors name
// the objects only, unless c.Sources says where they came from.
func FromObjects(c *policy.Cluster) (*Cluster, error) {
	return compile(c)
}

func compile(c *policy.Cluster) (*Cluster, error) {
	st, err := policy.Compile(c, policy.Options{})
	if err != nil {
		return nil, fmt.Errorf("compile manifests: %w", c.Annotate(err))
	}
	out := &Cluster{State: st, Ports: defaultPorts(c), Ignored: slices.Clone(c.Ignored)}
	for _, ep := range st.Endpoints {
		out.Pods = append(out.Pods, ep.Pod)
	}
	if len(out.Pods) == 0 {
		return nil, errors.New("compile manifests: no pods to probe: the manifests hold no Pod with an address (host-network and finished pods do not count)")
	}
	return out, nil
}

// Pod resolves "namespace/name" to one of the probed pods.
func (c *Cluster) Pod(ref string) (policy.PodRef, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return policy.PodRef{}, fmt.Errorf("pod %q: want namespace/name", ref)
	}
	p := policy.PodRef{Namespace: ns, Name: name}
	if _, ok := c.State.Endpoint(p); !ok {
		return policy.PodRef{}, fmt.Errorf("pod %s: not in the manifests (or host-network, or finished)", ref)
	}
	return p, nil
}
