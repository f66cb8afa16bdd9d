package chart_test

import (
	"bufio"
	"encoding/json"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../../charts/palisade"
	releaseName = "palisade"
	releaseNS   = "palisade-system"
	kubeVersion = "v1.36.4"
)

var (
	chartOnce   sync.Once
	loadedChart *chart.Chart
	loadErr     error
)

// loadChart loads the chart once; every render starts from the same copy
// (Render does not modify it).
func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	chartOnce.Do(func() { loadedChart, loadErr = loader.Load(chartDir) })
	if loadErr != nil {
		t.Fatalf("load chart %s: %v", chartDir, loadErr)
	}
	return loadedChart
}

// rel says which release a render is for.
type rel struct {
	name, namespace string
}

var defaultRelease = rel{releaseName, releaseNS}

func capabilities() *chartutil.Capabilities {
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: kubeVersion, Major: "1", Minor: "36"}
	return caps
}

// renderValues renders the chart as `helm install` would (values coalesced
// with values.yaml and checked against values.schema.json), returning the
// rendered files by template name.
func renderValues(t testing.TB, rl rel, vals map[string]any) (map[string]string, error) {
	t.Helper()
	ch := loadChart(t)
	opts := chartutil.ReleaseOptions{Name: rl.name, Namespace: rl.namespace, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValues(ch, withSite(t, vals), opts, capabilities())
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, rv)
}

// rendered is one render, split into objects.
type rendered struct {
	files    map[string]string
	objects  []*unstructured.Unstructured // install order, hooks excluded
	hooks    []*unstructured.Unstructured
	notes    string
	manifest []releaseutil.Manifest
}

// mustRender renders and parses, failing the test on any error.
func mustRender(t testing.TB, rl rel, vals map[string]any) *rendered {
	t.Helper()
	files, err := renderValues(t, rl, vals)
	if err != nil {
		t.Fatalf("render chart with %v: %v", vals, err)
	}
	r := &rendered{files: files}
	manifests := map[string]string{}
	for name, content := range files {
		switch {
		case strings.HasSuffix(name, "NOTES.txt"):
			r.notes = content
		case strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"):
			manifests[name] = content
		}
	}
	hooks, sorted, err := releaseutil.SortManifests(manifests, chartutil.VersionSet{}, releaseutil.InstallOrder)
	if err != nil {
		t.Fatalf("sort manifests: %v", err)
	}
	r.manifest = sorted
	for _, m := range sorted {
		r.objects = append(r.objects, parseObjects(t, m.Name, m.Content)...)
	}
	slices.SortStableFunc(hooks, func(a, b *release.Hook) int { return a.Weight - b.Weight })
	for _, h := range hooks {
		r.hooks = append(r.hooks, parseObjects(t, h.Path, h.Manifest)...)
	}
	return r
}

// parseObjects decodes every YAML document of one rendered file.
func parseObjects(t testing.TB, source, content string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(content)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: read document %d: %v", source, i, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: document %d: %v\n%s", source, i, err, doc)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// find returns the rendered objects of kind, optionally with name.
func (r *rendered) find(kind, name string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range append(slices.Clone(r.objects), r.hooks...) {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			out = append(out, o)
		}
	}
	return out
}

// one returns the single object of kind (and name, if given), or fails.
func (r *rendered) one(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	found := r.find(kind, name)
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %q, got %d (kinds rendered: %v)", kind, name, len(found), r.kinds())
	}
	return found[0]
}

// oneComponent returns the single object of kind labelled with component.
func (r *rendered) oneComponent(t testing.TB, kind, component string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range r.find(kind, "") {
		if o.GetLabels()["app.kubernetes.io/component"] == component {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s of component %s, got %d", kind, component, len(found))
	}
	return found[0]
}

func (r *rendered) kinds() []string {
	set := map[string]bool{}
	for _, o := range r.objects {
		set[o.GetKind()] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// typed converts a rendered object into its Go type, failing on any field
// the type does not know: a typo in a template is an error here, not a
// field the API server silently drops.
func typed[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

// values builds a values map from dotted paths: values("certs.mode", "secret").
func values(kv ...any) map[string]any {
	out := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		path := strings.Split(kv[i].(string), ".")
		m := out
		for _, p := range path[:len(path)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[path[len(path)-1]] = kv[i+1]
	}
	return out
}

func describe(vals map[string]any) string {
	b, _ := yaml.Marshal(vals)
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "; ")
}

// normalize round-trips v through JSON into a map, so that values built in
// Go (int64) and parsed from YAML (float64) compare equal.
func normalize(t testing.TB, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// runtimeFromUnstructured converts u into out, failing on unknown fields.
func runtimeFromUnstructured(u *unstructured.Unstructured, out runtime.Object) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true)
}
