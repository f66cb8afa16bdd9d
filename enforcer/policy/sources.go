package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ObjectRef names one object the compiler reads. Kind is "Namespace",
// "Pod" or "NetworkPolicy"; Namespace is empty for a Namespace.
type ObjectRef struct {
	Kind      string
	Namespace string
	Name      string
}

func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// objectOf names the object a compile error is about.
func objectOf(err error) (ObjectRef, bool) {
	var ip *InvalidPolicyError
	var io *InvalidObjectError
	switch {
	case errors.As(err, &ip):
		return ObjectRef{Kind: "NetworkPolicy", Namespace: ip.Policy.Namespace, Name: ip.Policy.Name}, true
	case errors.As(err, &io) && io.Kind == "namespace":
		return ObjectRef{Kind: "Namespace", Name: io.Name}, true
	case errors.As(err, &io) && io.Kind == "pod":
		// Pod errors name "namespace/name"; a namespace has no slash.
		ns, name, ok := strings.Cut(io.Name, "/")
		return ObjectRef{Kind: "Pod", Namespace: ns, Name: name}, ok
	}
	return ObjectRef{}, false
}

// Annotate prefixes each error Compile joined into err with where the
// manifest loader read the object it names (Cluster.Sources), so that a
// user can find the line to fix. Errors about objects of no known source
// are kept as they are.
func (c *Cluster) Annotate(err error) error {
	if err == nil || c == nil || len(c.Sources) == 0 {
		return err
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		if ref, ok := objectOf(e); ok {
			if where, ok := c.Sources[ref]; ok {
				e = fmt.Errorf("%s: %w", where, e)
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}
