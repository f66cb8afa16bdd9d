package rules

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Hand-written seeds live in testdata/fuzz/<FuzzName>/ with the ones the
// fuzzer found; f.Add only the inputs that name this package's own text.

// FuzzParse: any bytes either parse into a standard NewEvaluator accepts
// and that judges objects with one-line messages, or fail with one problem
// per line, each naming the source; never a panic.
func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte(testStandard))
	f.Add([]byte(podRulesStandard))
	probe := namespace("n", map[string]string{"a": "b"}, map[string]string{AnnotationRuleActions: "*=warn"})
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"x": "y"}},
		Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}}},
	}}
	f.Fuzz(func(t *testing.T, data []byte) {
		std, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if std != nil {
				t.Fatal("a standard with an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml:") && !strings.HasPrefix(line, "fuzz.yaml: ") {
					t.Fatalf("error line does not name the source: %q", line)
				}
			}
			if _, again := Parse(data, "fuzz.yaml"); again == nil || again.Error() != err.Error() {
				t.Fatalf("errors differ between runs:\n%v\n%v", err, again)
			}
			return
		}
		if std.Source != "fuzz.yaml" {
			t.Fatalf("source %q", std.Source)
		}
		e, err := NewEvaluator(std)
		if err != nil {
			t.Fatalf("parsed standard rejected by NewEvaluator: %v", err)
		}
		// A usable evaluator: every kind of judgement runs and keeps the
		// message promises with whatever texts the standard holds.
		var vs []Violation
		vs = append(vs, e.Namespace(probe)...)
		vs = append(vs, e.Namespace(namespace("n", nil, nil))...)
		vs = append(vs, e.Pod("pod n/p", nil, probe)...)
		vs = append(vs, e.Pod("pod n/p", map[string]string{"a": "\n"}, nil)...)
		vs = append(vs, e.NetworkPolicy(np, probe)...)
		for _, p := range std.Spec.ReservedPrefixes {
			vs = append(vs, e.ReservedKeys("pod n/p", nil, meta(map[string]string{p + "x": "y"}, nil), nil, probe)...)
		}
		checkShape(t, e, vs)
		prof := std.ProfileFor(probe.Labels)
		if _, ok := std.Spec.Profiles.Definitions[prof.Name]; !ok {
			t.Fatalf("ProfileFor gave undefined profile %q", prof.Name)
		}
		if pols := BaselinePolicies("n", prof); len(pols) < 2 {
			t.Fatalf("%d baseline policies", len(pols))
		}
	})
}

// labelList decodes "k=v\x00k=v" into labels; the fuzzer mutates one
// string per map and still reaches line breaks and odd bytes in values.
func labelList(s string) map[string]string {
	if s == "" {
		return nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(s, "\x00") {
		k, v, _ := strings.Cut(pair, "=")
		out[k] = v
	}
	return out
}

// FuzzEvaluatePod: arbitrary pod labels, namespace name, labels and
// rule-actions override never panic; every violation is one line with a
// known rule ID and a valid action; results do not depend on map order;
// inheriting first changes nothing; actions follow ActionFor.
func FuzzEvaluatePod(f *testing.F) {
	e := defaultEvaluator(f)
	f.Add("app=api\x00tier=backend", "shop", "owner=a\x00env=prod\x00data-classification=pci", "pod-tier=warn")
	f.Fuzz(func(t *testing.T, podLabels, nsName, nsLabels, actions string) {
		labels := labelList(podLabels)
		ns := namespace(nsName, labelList(nsLabels), map[string]string{AnnotationRuleActions: actions})
		pod := e.Pod("pod n/p", labels, ns)
		nsv := e.Namespace(ns)
		reserved := e.ReservedKeys("pod n/p", nil, meta(labels, labels), nil, ns)
		checkShape(t, e, pod)
		checkShape(t, e, nsv)
		checkShape(t, e, reserved)
		for _, v := range append(slices.Clone(pod), nsv...) {
			if want := e.ActionFor(v.RuleID, ns); v.Action != want {
				t.Fatalf("%s acts %s, ActionFor says %s", v.RuleID, v.Action, want)
			}
		}
		if !reflect.DeepEqual(pod, e.Pod("pod n/p", maps.Clone(labels), ns)) ||
			!reflect.DeepEqual(reserved, e.ReservedKeys("pod n/p", nil, meta(maps.Clone(labels), maps.Clone(labels)), nil, ns)) ||
			!reflect.DeepEqual(nsv, e.Namespace(ns)) {
			t.Fatal("results depend on map order")
		}
		syntax := 0
		for _, v := range nsv {
			if v.RuleID == RuleInvalidActionsSyntax {
				syntax++
			}
		}
		if ok := e.ValidateRuleActions(actions) == nil; ok != (syntax == 0) || syntax > 1 {
			t.Fatalf("ValidateRuleActions ok=%v but %d syntax violations", ok, syntax)
		}
		inherited := e.Inherit(labels, ns)
		withInherited := maps.Clone(labels)
		if withInherited == nil {
			withInherited = map[string]string{}
		}
		for k, v := range inherited {
			if _, own := labels[k]; own {
				t.Fatalf("Inherit overrides the pod's own %s", k)
			}
			if ns.Labels[k] != v {
				t.Fatalf("Inherit %s=%q, namespace has %q", k, v, ns.Labels[k])
			}
			withInherited[k] = v
		}
		if got := e.Pod("pod n/p", withInherited, ns); render(got) != render(pod) {
			t.Fatalf("inheriting first changes the verdict:\n%s\nvs\n%s", render(got), render(pod))
		}
	})
}

// FuzzEvaluateNetworkPolicy: any policy (as JSON the API might carry) in
// any namespace never panics and yields well-formed, order-independent
// violations; the regulated check fires only in pci and hipaa namespaces.
func FuzzEvaluateNetworkPolicy(f *testing.F) {
	e := defaultEvaluator(f)
	f.Add([]byte(`{"metadata":{"name":"p","namespace":"shop"},"spec":{"podSelector":{"matchLabels":{"role":"db"}},"policyTypes":["Ingress","Egress"],"ingress":[{"from":[{"namespaceSelector":{}},{"ipBlock":{"cidr":"0.0.0.0/0"}}]}],"egress":[{"ports":[{"port":53,"endPort":60,"protocol":"UDP"}]}]}}`), "data-classification=pci", "")
	f.Fuzz(func(t *testing.T, policy []byte, nsLabels, actions string) {
		np := &networkingv1.NetworkPolicy{}
		if json.Unmarshal(policy, np) != nil {
			return
		}
		ns := namespace(np.Namespace, labelList(nsLabels), map[string]string{AnnotationRuleActions: actions})
		vs := e.NetworkPolicy(np, ns)
		checkShape(t, e, vs)
		if !reflect.DeepEqual(vs, e.NetworkPolicy(np.DeepCopy(), ns)) {
			t.Fatal("results depend on map order")
		}
		class := ns.Labels["data-classification"]
		for _, v := range vs {
			if v.RuleID == RuleRegulatedAllNS && class != "pci" && class != "hipaa" {
				t.Fatalf("regulated check in a %q namespace: %s", class, v.Message)
			}
			if want := e.ActionFor(v.RuleID, ns); v.Action != want {
				t.Fatalf("%s acts %s, ActionFor says %s", v.RuleID, v.Action, want)
			}
		}
		// Policies add up: among the baseline (DNS for every pod) the DNS
		// warning goes, and nothing else changes (unless np is named as
		// the DNS policy, whose earlier version it then stands for).
		among := e.NetworkPolicyAmong(np, ns, BaselinePolicies(np.Namespace, Default().ProfileFor(ns.Labels)))
		var rest []Violation
		for _, v := range vs {
			if v.RuleID != RuleEgressWithoutDNS {
				rest = append(rest, v)
			}
		}
		if np.Name != PolicyAllowDNS && render(among) != render(rest) {
			t.Fatalf("among the baseline:\n%s\nwant:\n%s", render(among), render(rest))
		}
		// Without the namespace only the classification-limited check is lost.
		if got, want := len(e.NetworkPolicy(np, nil)), len(vs)-countRule(vs, RuleRegulatedAllNS); got != want {
			t.Fatalf("%d findings without the namespace, want %d", got, want)
		}
	})
}

func countRule(vs []Violation, id string) int {
	n := 0
	for _, v := range vs {
		if v.RuleID == id {
			n++
		}
	}
	return n
}

// FuzzRuleActions: ParseRuleActions and ActionFor agree on every
// well-formed annotation, and neither panics on any other.
func FuzzRuleActions(f *testing.F) {
	e := defaultEvaluator(f)
	ids := e.RuleIDs()
	f.Add("*=warn,pod-tier=deny", uint8(4))
	f.Fuzz(func(t *testing.T, ann string, pick uint8) {
		rule := ids[int(pick)%len(ids)]
		ns := overrides(ann)
		got := e.ActionFor(rule, ns)
		if !validAction(got) {
			t.Fatalf("ActionFor = %q", got)
		}
		base := e.ActionFor(rule, nil)
		m, err := ParseRuleActions(ann)
		if err != nil {
			if m != nil || strings.ContainsAny(err.Error(), "\r\n") || !strings.HasPrefix(err.Error(), "parse rule actions: entry ") {
				t.Fatalf("ParseRuleActions error %q, map %v", err, m)
			}
			if e.ValidateRuleActions(ann) == nil {
				t.Fatal("ValidateRuleActions accepts what ParseRuleActions rejects")
			}
			// A malformed annotation can only pick an action it names.
			if got != base && !strings.Contains(ann, string(got)) {
				t.Fatalf("ActionFor(%s) = %s with %q", rule, got, ann)
			}
			return
		}
		want := base
		if a, ok := m[rule]; ok && !IsGuardRule(rule) {
			want = a
		} else if a, ok := m["*"]; ok && !IsGuardRule(rule) {
			want = a
		}
		if got != want {
			t.Fatalf("ActionFor(%s) = %s with %q, parsed as %v", rule, got, ann, m)
		}
		// What parses, re-serialised, parses to the same.
		var parts []string
		for id, a := range m {
			parts = append(parts, id+"="+string(a))
		}
		again, err := ParseRuleActions(strings.Join(parts, ","))
		if err != nil || !maps.Equal(again, m) {
			t.Fatalf("round trip of %v: %v, %v", m, again, err)
		}
		refused := false
		for id, a := range m {
			refused = refused || (id != "*" && !contains(ids, id)) || (IsGuardRule(id) && a != ActionDeny)
		}
		if verr := e.ValidateRuleActions(ann); (verr != nil) != refused {
			t.Fatalf("ValidateRuleActions(%q) = %v", ann, verr)
		}
	})
}
