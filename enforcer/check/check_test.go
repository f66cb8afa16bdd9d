package check

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

func pod(ref string) policy.PodRef {
	ns, name, _ := strings.Cut(ref, "/")
	return policy.PodRef{Namespace: ns, Name: name}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const podDoc = `apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: shop}
spec: {containers: [{name: c}]}
status: {podIP: %s}
`

func TestLoadErrorsNameFileAndObject(t *testing.T) {
	dir := t.TempDir()
	dupA := writeFile(t, dir, "dup/a.yaml", strings.Replace(strings.Replace(podDoc, "%s", "web", 1), "%s", "10.0.0.1", 1))
	writeFile(t, dir, "dup/b.yaml", strings.Replace(strings.Replace(podDoc, "%s", "web", 1), "%s", "10.0.0.2", 1))
	onlyNS := writeFile(t, dir, "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
	sameIP := writeFile(t, dir, "same-ip.yaml", strings.Replace(strings.Replace(podDoc, "%s", "a", 1), "%s", "10.0.0.1", 1)+
		"---\n"+strings.Replace(strings.Replace(podDoc, "%s", "b", 1), "%s", "10.0.0.1", 1))
	for _, tc := range []struct {
		name  string
		paths []string
		want  []string
	}{
		{"unparsable", []string{"testdata/bad/not-yaml.yaml"}, []string{"testdata/bad/not-yaml.yaml: document 1", "yaml: line 3"}},
		{"pod without ip", []string{"testdata/bad/no-ip.yaml"}, []string{"testdata/bad/no-ip.yaml: document 1: Pod shop/web: status.podIP: Required value"}},
		{"invalid policy", []string{"testdata/bad/invalid-policy.yaml"}, []string{"testdata/bad/invalid-policy.yaml: document 1: invalid networkpolicy shop/broken: spec.ingress[0].ports[0].port: Invalid value: 70000"}},
		{"defined in two files", []string{filepath.Join(dir, "dup")}, []string{"b.yaml: document 1: Pod shop/web already defined at " + dupA + ": document 1"}},
		{"two pods one address", []string{sameIP}, []string{sameIP + ": document 2: invalid pod shop/b: address 10.0.0.1 also belongs to pod shop/a"}},
		{"no pods", []string{onlyNS}, []string{"no pods to probe"}},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml: no such file or directory"}},
		{"no paths", nil, []string{"no files given"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.paths...)
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadShop(t *testing.T) {
	c := loadShop(t)
	if want := []policy.PodRef{pod("db/postgres"), pod("shop/web"), pod("shop/worker")}; !slices.Equal(c.Pods, want) {
		t.Errorf("pods = %v, want %v", c.Pods, want)
	}
	if want := []Port{{5432, policy.ProtocolTCP}, {8080, policy.ProtocolTCP}}; !slices.Equal(c.Ports, want) {
		t.Errorf("ports = %v, want %v", c.Ports, want)
	}
	if len(c.Ignored) != 1 || !strings.Contains(c.Ignored[0], "Service shop/web") {
		t.Errorf("ignored = %v, want the Service", c.Ignored)
	}
	for _, tc := range []struct{ ref, err string }{
		{"shop/web", ""},
		{"shop/nope", "pod shop/nope: not in the manifests"},
		{"web", `pod "web": want namespace/name`},
		{"shop/web/x", "want namespace/name"},
		{"/web", "want namespace/name"},
	} {
		_, err := c.Pod(tc.ref)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Pod(%q) = %v, want error ~%q", tc.ref, err, tc.err)
		}
	}
}

func TestDefaultPorts(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "m.yaml", `apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x}
spec:
  initContainers: [{name: i, ports: [{containerPort: 9000, protocol: SCTP}]}]
  containers:
  - name: c
    ports:
    - {name: dns, containerPort: 5353, protocol: UDP}
    - {name: dns, containerPort: 5354}
    - {name: web, containerPort: 8080}
status: {podIP: 10.0.0.1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports:
    - {port: dns, protocol: UDP}
    - {port: 30000, endPort: 30010}
    - {protocol: UDP}
    - {port: nope}
  egress:
  - ports: [{port: 53, protocol: UDP}, {port: 53}]
`)
	c, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []Port{{53, policy.ProtocolTCP}, {53, policy.ProtocolUDP}, {5353, policy.ProtocolUDP}, {5354, policy.ProtocolTCP},
		{8080, policy.ProtocolTCP}, {9000, policy.ProtocolSCTP}, {30000, policy.ProtocolTCP}, {30010, policy.ProtocolTCP}}
	if !slices.Equal(c.Ports, want) {
		t.Errorf("ports = %v\nwant %v", c.Ports, want)
	}
}

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Port
		err  string
	}{
		{"80/TCP,53/UDP", []Port{{80, policy.ProtocolTCP}, {53, policy.ProtocolUDP}}, ""},
		{"80", []Port{{80, policy.ProtocolTCP}}, ""},
		{" 80/tcp , 80/TCP,9/sctp", []Port{{80, policy.ProtocolTCP}, {9, policy.ProtocolSCTP}}, ""},
		{"0/TCP", nil, `port "0/TCP": want a number 1-65535`},
		{"65536", nil, "want a number 1-65535"},
		{"http/TCP", nil, "want a number"},
		{"80/ICMP", nil, `protocol "ICMP": want TCP, UDP or SCTP`},
		{"80,", nil, `port "": want a number`},
	} {
		got, err := ParsePorts(tc.in)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParsePorts(%q) error = %v, want ~%q", tc.in, err, tc.err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ParsePorts(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestMatrixLeavesOutSelfPairs(t *testing.T) {
	pods := []policy.PodRef{pod("x/a"), pod("x/b")}
	got := Matrix(pods, pods, []Port{{80, policy.ProtocolTCP}, {53, policy.ProtocolUDP}})
	var text []string
	for _, p := range got {
		text = append(text, p.String())
	}
	want := []string{"x/a -> x/b 80/TCP", "x/b -> x/a 80/TCP", "x/a -> x/b 53/UDP", "x/b -> x/a 53/UDP"}
	if !slices.Equal(text, want) {
		t.Errorf("matrix = %q, want %q", text, want)
	}
}

func judgeShop(t *testing.T, c *Cluster, probes []Probe) []Result {
	t.Helper()
	res, err := NewModelEngine(c.State).Judge(probes)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestWriteJSONExact(t *testing.T) {
	c := loadShop(t)
	res := judgeShop(t, c, Matrix([]policy.PodRef{pod("shop/worker")}, []policy.PodRef{pod("db/postgres"), pod("shop/web")}, []Port{{8080, policy.ProtocolTCP}}))
	var b bytes.Buffer
	if err := WriteJSON(&b, res); err != nil {
		t.Fatal(err)
	}
	want := `{"results":[` +
		`{"from":"shop/worker","to":"db/postgres","port":8080,"protocol":"TCP","allowed":false,"reason":"denied: ingress of db/postgres isolated by db/allow-web, db/default-deny; no rule allows"},` +
		`{"from":"shop/worker","to":"shop/web","port":8080,"protocol":"TCP","allowed":true,"reason":"allowed: egress of shop/worker not isolated; ingress of shop/web allowed by shop/web-ingress ingress rule 0 (all peers)"}` +
		"]}\n"
	if b.String() != want {
		t.Errorf("json:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteTable(t *testing.T) {
	c := loadShop(t)
	res := judgeShop(t, c, Matrix(c.Pods, c.Pods, c.Ports))
	var b bytes.Buffer
	if err := WriteTable(&b, res); err != nil {
		t.Fatal(err)
	}
	want := `5432/TCP     db/postgres  shop/web  shop/worker
db/postgres  -            X         X
shop/web     .            -         .
shop/worker  X            X         -

8080/TCP     db/postgres  shop/web  shop/worker
db/postgres  -            X         X
shop/web     X            -         .
shop/worker  X            .         -

4 of 12 connections allowed (rows: from, columns: to; '.' allowed, 'X' denied)
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestExpectations(t *testing.T) {
	c := loadShop(t)
	parse := func(doc string) ([]Expectation, error) { return ParseExpectations(c, "reach.yaml", []byte(doc)) }
	t.Run("yaml and json read alike", func(t *testing.T) {
		y, err := parse("results:\n- {from: shop/web, to: db/postgres, port: 5432, protocol: tcp, allowed: true}\n- {from: shop/worker, to: db/postgres, port: 5432, allowed: false, reason: anything}\n")
		if err != nil {
			t.Fatal(err)
		}
		j, err := parse(`{"results":[{"from":"shop/web","to":"db/postgres","port":5432,"protocol":"TCP","allowed":true},{"from":"shop/worker","to":"db/postgres","port":5432,"protocol":"TCP","allowed":false}]}`)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(y, j) || len(y) != 2 {
			t.Errorf("yaml %v != json %v", y, j)
		}
	})
	for _, tc := range []struct{ name, doc, err string }{
		{"unknown pod", "results: [{from: shop/nope, to: db/postgres, port: 1, allowed: true}]", "reach.yaml: results[0]: from: pod shop/nope: not in the manifests"},
		{"bad port", "results: [{from: shop/web, to: db/postgres, port: 0, allowed: true}]", "results[0]: port 0: want 1-65535"},
		{"bad protocol", "results: [{from: shop/web, to: db/postgres, port: 1, protocol: ICMP, allowed: true}]", `results[0]: protocol "ICMP"`},
		{"self", "results: [{from: shop/web, to: shop/web, port: 1, allowed: true}]", "results[0]: from and to are both shop/web"},
		{"unknown field", "results: [{from: shop/web, to: db/postgres, port: 1, allow: true}]", `unknown field "allow"`},
		{"both ways", "results: [{from: shop/web, to: db/postgres, port: 1, allowed: true}, {from: shop/web, to: db/postgres, port: 1, protocol: TCP, allowed: false}]", "results[1]: shop/web -> db/postgres 1/TCP expected both allowed and denied (also results[0])"},
		{"not a document", "results: 3", "reach.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error = %v, want ~%q", err, tc.err)
			}
		})
	}
	t.Run("mismatches named", func(t *testing.T) {
		want, err := parse(`results:
- {from: shop/web, to: db/postgres, port: 5432, allowed: true}
- {from: shop/worker, to: db/postgres, port: 5432, allowed: true}
- {from: shop/worker, to: shop/web, port: 8080, allowed: false}
- {from: db/postgres, to: shop/web, port: 9999, protocol: UDP, allowed: false}
`)
		if err != nil {
			t.Fatal(err)
		}
		probes := WithExpectations(Matrix(c.Pods, c.Pods, c.Ports), want)
		if len(probes) != 13 {
			t.Errorf("%d probes, want the 12 of the matrix and the one expectation outside it", len(probes))
		}
		mm, err := Compare(want, judgeShop(t, c, probes))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range mm {
			got = append(got, m.String())
		}
		wantText := []string{
			"shop/worker -> db/postgres 5432/TCP: expected allowed, got denied (denied: ingress of db/postgres isolated by db/allow-web, db/default-deny; no rule allows)",
			"shop/worker -> shop/web 8080/TCP: expected denied, got allowed (allowed: egress of shop/worker not isolated; ingress of shop/web allowed by shop/web-ingress ingress rule 0 (all peers))",
		}
		if !slices.Equal(got, wantText) {
			t.Errorf("mismatches:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantText, "\n"))
		}
		if _, err := Compare(want, nil); err == nil || !strings.Contains(err.Error(), "was not probed") {
			t.Errorf("Compare without results: %v, want 'was not probed'", err)
		}
	})
}

func TestWriteExplanation(t *testing.T) {
	c := loadShop(t)
	for _, tc := range []struct {
		probe Probe
		want  []string
	}{
		{Probe{pod("shop/web"), pod("db/postgres"), Port{5432, policy.ProtocolTCP}}, []string{
			"shop/web -> db/postgres 5432/TCP: allowed\n",
			"  packet:   10.0.0.1 -> 10.0.1.1 TCP port 5432\n",
			"  from:     shop/web, identity 257 (namespace shop; labels app=web,tier=frontend)\n",
			"  egress:   at shop/web: allowed: not isolated (no policy selects shop/web for egress)\n",
			"  ingress:  at db/postgres: allowed: isolated by db/allow-web, db/default-deny; allowed by db/allow-web ingress rule 0 (peer 0) [entry 256 ingress 257 TCP 5432]\n",
			"  verdict:  allowed: egress of shop/web not isolated; ingress of db/postgres allowed by db/allow-web ingress rule 0 (peer 0)\n",
		}},
		{Probe{pod("db/postgres"), pod("shop/web"), Port{8080, policy.ProtocolTCP}}, []string{
			"db/postgres -> shop/web 8080/TCP: denied\n",
			"  egress:   at db/postgres: denied: isolated by db/default-deny; no rule allows identity 257 on 8080/TCP\n",
			"  ingress:  at shop/web: allowed: isolated by shop/web-ingress; allowed by shop/web-ingress ingress rule 0 (all peers) [entry 257 ingress any TCP 8080]\n",
		}},
	} {
		var b bytes.Buffer
		if err := WriteExplanation(&b, c.State, judgeShop(t, c, []Probe{tc.probe})[0]); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("explanation lacks %q:\n%s", w, b.String())
			}
		}
	}
}

// auditCluster puts namespace x in audit mode with a default-deny.
func auditCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := FromObjects(&policy.Cluster{
		Namespaces: []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "x", Annotations: map[string]string{policy.AnnotationEnforcement: "audit"}}}},
		Pods: []corev1.Pod{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "a"}, Status: corev1.PodStatus{PodIP: "10.0.0.1"}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: "b"}, Status: corev1.PodStatus{PodIP: "10.0.0.2"}},
		},
		Policies: []networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny"},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFromObjectsErrorsNameObjects(t *testing.T) {
	_, err := FromObjects(&policy.Cluster{Pods: []corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "a"}, Status: corev1.PodStatus{PodIP: "10.0.0.300"}},
	}})
	if err == nil || !strings.Contains(err.Error(), `invalid pod x/a: status.podIPs: Invalid value: "10.0.0.300"`) {
		t.Errorf("error = %v, want the pod named", err)
	}
}

func TestEngineNames(t *testing.T) {
	c := loadShop(t)
	if _, err := NewEngine("ebpf", c.State); err == nil || !strings.Contains(err.Error(), `engine "ebpf": want model or bpf`) {
		t.Errorf("NewEngine(ebpf) = %v", err)
	}
	e, err := NewEngine(EngineModel, c.State)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}
