package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// maxManifestBytes bounds one file or stream; manifests are small, and a
// bound keeps a stray huge file from exhausting memory.
const maxManifestBytes = 64 << 20

// LoadManifests reads Namespaces, Pods and NetworkPolicies for the offline
// checker from YAML or JSON files; a directory contributes every *.yaml,
// *.yml and *.json file below it. Documents may be multi-document streams
// and v1 List kinds. Documents of other kinds are listed in
// Cluster.Ignored; Cluster.Sources records where each object was read, for
// Cluster.Annotate. Errors name the file and document; a pod without an
// IP is an error, since the checker cannot place it.
func LoadManifests(paths ...string) (*Cluster, error) {
	l := newManifestLoader()
	for _, p := range paths {
		files, err := manifestFiles(p)
		if err != nil {
			return nil, fmt.Errorf("load manifests: %w", err)
		}
		for _, f := range files {
			if err := l.readFile(f); err != nil {
				return nil, fmt.Errorf("load manifests: %w", err)
			}
		}
	}
	return l.cluster, nil
}

// ReadManifests reads one stream as LoadManifests reads a file; name
// labels its errors.
func ReadManifests(name string, r io.Reader) (*Cluster, error) {
	l := newManifestLoader()
	if err := l.read(name, r); err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	return l.cluster, nil
}

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

type manifestLoader struct {
	cluster *Cluster
}

func newManifestLoader() *manifestLoader {
	return &manifestLoader{cluster: &Cluster{Sources: map[ObjectRef]string{}}}
}

func (l *manifestLoader) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return l.read(path, f)
}

func (l *manifestLoader) read(name string, r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, maxManifestBytes+1))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxManifestBytes {
		return fmt.Errorf("%s: larger than %d bytes", name, maxManifestBytes)
	}
	yr := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		where := fmt.Sprintf("%s: document %d", name, doc)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue
		}
		if err := l.object(where, js); err != nil {
			return err
		}
	}
}

// object decodes one JSON object (a document or a List item).
func (l *manifestLoader) object(where string, js []byte) error {
	var tm metav1.TypeMeta
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return fmt.Errorf("%s: not a Kubernetes object: %w", where, err)
	}
	if tm.Kind == "" {
		return fmt.Errorf("%s: kind: Required value", where)
	}
	switch {
	case tm.Kind == "List" || strings.HasSuffix(tm.Kind, "List"):
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(js, &list); err != nil {
			return fmt.Errorf("%s: %s: %w", where, tm.Kind, err)
		}
		for i, item := range list.Items {
			if err := l.object(fmt.Sprintf("%s item %d", where, i), item); err != nil {
				return err
			}
		}
		return nil
	case tm.Kind == "Namespace" && tm.APIVersion == "v1":
		var ns corev1.Namespace
		if err := strictJSON(js, &ns); err != nil {
			return fmt.Errorf("%s: Namespace: %w", where, err)
		}
		if ns.Name == "" {
			return fmt.Errorf("%s: Namespace: metadata.name: Required value", where)
		}
		if err := l.claim(where, ObjectRef{Kind: "Namespace", Name: ns.Name}); err != nil {
			return err
		}
		l.cluster.Namespaces = append(l.cluster.Namespaces, ns)
	case tm.Kind == "Pod" && tm.APIVersion == "v1":
		var pod corev1.Pod
		if err := strictJSON(js, &pod); err != nil {
			return fmt.Errorf("%s: Pod: %w", where, err)
		}
		if pod.Name == "" {
			return fmt.Errorf("%s: Pod: metadata.name: Required value", where)
		}
		pod.Namespace = namespaceOf(pod.Namespace)
		ref := ObjectRef{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name}
		if pod.Status.PodIP == "" && len(pod.Status.PodIPs) == 0 {
			return fmt.Errorf("%s: %s: status.podIP: Required value: the checker needs each pod's address", where, ref)
		}
		if err := l.claim(where, ref); err != nil {
			return err
		}
		l.cluster.Pods = append(l.cluster.Pods, pod)
	case tm.Kind == "NetworkPolicy" && tm.APIVersion == "networking.k8s.io/v1":
		var np networkingv1.NetworkPolicy
		if err := strictJSON(js, &np); err != nil {
			return fmt.Errorf("%s: NetworkPolicy: %w", where, err)
		}
		if np.Name == "" {
			return fmt.Errorf("%s: NetworkPolicy: metadata.name: Required value", where)
		}
		np.Namespace = namespaceOf(np.Namespace)
		if err := l.claim(where, ObjectRef{Kind: "NetworkPolicy", Namespace: np.Namespace, Name: np.Name}); err != nil {
			return err
		}
		l.cluster.Policies = append(l.cluster.Policies, np)
	case tm.Kind == "Namespace" || tm.Kind == "Pod" || tm.Kind == "NetworkPolicy":
		return fmt.Errorf("%s: %s: unsupported apiVersion %q", where, tm.Kind, tm.APIVersion)
	default:
		var meta struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		_ = sigsjson.UnmarshalCaseSensitivePreserveInts(js, &meta)
		name := meta.Metadata.Name
		if meta.Metadata.Namespace != "" {
			name = meta.Metadata.Namespace + "/" + name
		}
		l.cluster.Ignored = append(l.cluster.Ignored, fmt.Sprintf("%s: %s %s", where, tm.Kind, name))
	}
	return nil
}

// claim records where an object is defined; a second definition is an
// error naming both places.
func (l *manifestLoader) claim(where string, ref ObjectRef) error {
	if first, dup := l.cluster.Sources[ref]; dup {
		return fmt.Errorf("%s: %s already defined at %s", where, ref, first)
	}
	l.cluster.Sources[ref] = where
	return nil
}

// strictJSON decodes as the API server's strict field validation does:
// field names match case-sensitively, and an unknown or duplicate field is
// an error rather than silently dropped.
func strictJSON(js []byte, into any) error {
	strict, err := sigsjson.UnmarshalStrict(js, into, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}
