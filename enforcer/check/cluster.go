package check

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// and the object: unparsable documents, pods without addresses, objects
// defined twice, and policies the API server would reject all fail.
func Load(paths ...string) (*Cluster, error) {
	if len(paths) == 0 {
		return nil, errors.New("load manifests: no files given")
	}
	var files []string
	for _, p := range paths {
		found, err := manifestFiles(p)
		if err != nil {
			return nil, fmt.Errorf("load manifests: %w", err)
		}
		files = append(files, found...)
	}
	all := &policy.Cluster{}
	origin := origins{}
	for _, f := range files {
		// One file at a time, so that every object is known by its file.
		c, err := policy.LoadManifests(f)
		if err != nil {
			return nil, err
		}
		for _, ns := range c.Namespaces {
			if err := origin.claim(f, "namespace "+ns.Name); err != nil {
				return nil, err
			}
		}
		for _, pod := range c.Pods {
			if err := origin.claim(f, "pod "+pod.Namespace+"/"+pod.Name); err != nil {
				return nil, err
			}
		}
		for _, np := range c.Policies {
			if err := origin.claim(f, "networkpolicy "+np.Namespace+"/"+np.Name); err != nil {
				return nil, err
			}
		}
		all.Namespaces = append(all.Namespaces, c.Namespaces...)
		all.Pods = append(all.Pods, c.Pods...)
		all.Policies = append(all.Policies, c.Policies...)
		all.Ignored = append(all.Ignored, c.Ignored...)
	}
	return compile(all, origin)
}

// FromObjects compiles objects that did not come from files; errors name
// the objects only.
func FromObjects(c *policy.Cluster) (*Cluster, error) {
	return compile(c, nil)
}

func compile(c *policy.Cluster, origin origins) (*Cluster, error) {
	st, err := policy.Compile(c, policy.Options{})
	if err != nil {
		return nil, fmt.Errorf("compile manifests: %w", origin.annotate(err))
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

// origins maps "kind ns/name" to the file that defines it.
type origins map[string]string

func (o origins) claim(file, what string) error {
	if first, dup := o[what]; dup {
		return fmt.Errorf("load manifests: %s: %s already defined in %s", file, what, first)
	}
	o[what] = file
	return nil
}

// annotate prefixes each of the compiler's errors with the file defining
// the object it names, one per line.
func (o origins) annotate(err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		var what string
		var ip *policy.InvalidPolicyError
		var io *policy.InvalidObjectError
		switch {
		case errors.As(e, &ip):
			what = "networkpolicy " + ip.Policy.String()
		case errors.As(e, &io):
			what = io.Kind + " " + io.Name
		}
		if file, ok := o[what]; ok {
			e = fmt.Errorf("%s: %w", file, e)
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// manifestFiles lists what policy.LoadManifests would read for path.
func manifestFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", path, err)
	}
	slices.Sort(files)
	return files, nil
}
