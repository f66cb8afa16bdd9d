package policy

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadManifestsDirectory(t *testing.T) {
	c, err := LoadManifests("testdata/manifests/dir")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Namespaces) != 2 || len(c.Pods) != 2 || len(c.Policies) != 1 {
		t.Fatalf("got %d namespaces, %d pods, %d policies", len(c.Namespaces), len(c.Pods), len(c.Policies))
	}
	if len(c.Ignored) != 1 || !strings.Contains(c.Ignored[0], "service.yml: document 1: Service shop/web") {
		t.Errorf("ignored %q", c.Ignored)
	}
	s := mustCompile(t, c, Options{})
	web, _ := s.EndpointOf(PodRef{"shop", "web"})
	pg, _ := s.EndpointOf(PodRef{"db", "postgres"})
	if v := Decide(s, web, pg, ProtocolTCP, 5432); !v.Allowed {
		t.Errorf("web -> postgres: %s", v.Reason())
	}
	if v := Decide(s, pg, web, ProtocolTCP, 8080); !v.Allowed {
		t.Errorf("postgres -> web: %s", v.Reason())
	}
	if v := Decide(s, ep("fd00::1"), pg, ProtocolTCP, 5432); !v.Allowed {
		t.Errorf("web's second address: %s", v.Reason())
	}
	if e, _ := s.Endpoint(PodRef{"shop", "web"}); e.Mode != ModeAudit {
		t.Errorf("mode %s", e.Mode)
	}
}

func TestLoadManifestsErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"pod without IP", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\n", []string{"m.yaml: document 1", "x/p", "status.podIP"}},
		{"second document", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: Namespace\n", []string{"document 2", "apiVersion"}},
		{"unknown field", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podselector: {}}\n", []string{"document 1", "unknown field \"spec.podselector\""}},
		{"wrong type", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {ok: [1]}}\n", []string{"document 1", "Namespace"}},
		{"old apiVersion", "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p}\n", []string{"unsupported apiVersion"}},
		{"no kind", "apiVersion: v1\nmetadata: {name: a}\n", []string{"kind: Required"}},
		{"no name", "apiVersion: v1\nkind: Namespace\nmetadata: {}\n", []string{"metadata.name"}},
		{"duplicate", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", []string{"document 2", "already defined at m.yaml: document 1"}},
		{"list item", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: p}}\n", []string{"document 1 item 0", "default/p"}},
		{"not yaml", "a: [b\n", []string{"document 1"}},
		{"scalar", "just text\n", []string{"document 1", "not a Kubernetes object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadManifests("m.yaml", strings.NewReader(tt.text))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadManifestsNamesFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "a.yaml")
	bad := filepath.Join(dir, "b.yaml")
	if err := os.WriteFile(good, []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadManifests(dir)
	if err == nil || !strings.Contains(err.Error(), bad+": document 1") || !strings.Contains(err.Error(), good+": document 1") {
		t.Errorf("duplicate across files: %v", err)
	}
	if _, err := LoadManifests(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

// FuzzReadManifests feeds arbitrary streams to the loader, then compiles
// and judges whatever it accepts: nothing may panic, and what loads must
// compile to a State.
func FuzzReadManifests(f *testing.F) {
	for _, p := range []string{"testdata/manifests/dir/namespaces.yaml", "testdata/manifests/dir/sub/pods.yaml", "testdata/manifests/dir/sub/policies.json"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadManifests("fuzz", strings.NewReader(string(data)))
		if err != nil {
			return
		}
		s, _ := Compile(c, Options{})
		if s == nil {
			t.Fatal("no state")
		}
		for _, a := range s.Endpoints {
			for _, b := range s.Endpoints {
				if len(a.IPs) > 0 && len(b.IPs) > 0 {
					Decide(s, Endpoint{IP: a.IPs[0]}, Endpoint{IP: b.IPs[0]}, ProtocolTCP, 80)
				}
			}
		}
	})
}

func TestManifestSourcesNameCompileErrors(t *testing.T) {
	text := `apiVersion: v1
kind: Namespace
metadata: {name: x, annotations: {palisade.dev/enforcement: loud}}
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: x}, status: {podIP: 10.0.0.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: b, namespace: x}, status: {podIP: 10.0.0.1}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec: {podSelector: {}, ingress: [{ports: [{port: 0}]}]}
`
	c, err := ReadManifests("m.yaml", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	wantSources := map[ObjectRef]string{
		{Kind: "Namespace", Name: "x"}:                     "m.yaml: document 1",
		{Kind: "Pod", Namespace: "x", Name: "a"}:           "m.yaml: document 2 item 0",
		{Kind: "Pod", Namespace: "x", Name: "b"}:           "m.yaml: document 2 item 1",
		{Kind: "NetworkPolicy", Namespace: "x", Name: "p"}: "m.yaml: document 3",
	}
	if !maps.Equal(c.Sources, wantSources) {
		t.Errorf("sources %v, want %v", c.Sources, wantSources)
	}
	_, err = Compile(c, Options{})
	got := c.Annotate(err).Error()
	for _, want := range []string{
		"m.yaml: document 1: invalid namespace x: metadata.annotations",
		"m.yaml: document 2 item 1: invalid pod x/b: address 10.0.0.1 also belongs to pod x/a",
		"m.yaml: document 3: invalid networkpolicy x/p: spec.ingress[0].ports[0].port",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("annotated error %q\nlacks %q", got, want)
		}
	}
	// Objects of no known source keep their errors as they are.
	bare := &Cluster{Namespaces: c.Namespaces}
	_, err = Compile(bare, Options{})
	if got := bare.Annotate(err); got.Error() != err.Error() {
		t.Errorf("annotated %q without sources: %q", err, got)
	}
	if (&Cluster{}).Annotate(nil) != nil {
		t.Error("annotated no error into one")
	}
}
