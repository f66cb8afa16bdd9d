package netpolcases

import (
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

func TestEveryCaseLoadsAndApplies(t *testing.T) {
	cases, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 48 {
		t.Errorf("want the 48 upstream cases, found %d", len(cases))
	}
	for _, c := range cases {
		for _, fam := range Families() {
			m, err := NewModel(&c, fam)
			if err != nil {
				t.Fatal(err)
			}
			for si := range c.Steps {
				if err := m.Apply(&c.Steps[si]); err != nil {
					t.Errorf("%s/%s step %d: %v", c.File, fam.Name, si, err)
				}
				if len(c.Steps[si].Probes) == 0 {
					t.Errorf("%s step %d probes nothing", c.File, si)
				}
			}
		}
	}
}

func TestProbeAllowsAppliesExpectationsInOrder(t *testing.T) {
	p := Probe{Expect: []Expect{
		{From: "*", To: "x", Allow: false},
		{From: "y", To: "x/a", Allow: true},
		{From: "y/b", To: "x/*", Allow: false},
	}}
	xa, xb := policy.PodRef{Namespace: "x", Name: "a"}, policy.PodRef{Namespace: "x", Name: "b"}
	ya, yb := policy.PodRef{Namespace: "y", Name: "a"}, policy.PodRef{Namespace: "y", Name: "b"}
	tests := []struct {
		from, to policy.PodRef
		want     bool
	}{
		{ya, xa, true},
		{yb, xa, false},
		{ya, xb, false},
		{xa, ya, true},
		{xb, xa, false},
	}
	for _, tt := range tests {
		if got := p.Allows(tt.from, tt.to); got != tt.want {
			t.Errorf("%s → %s: allowed %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestModelRejectsBadInput(t *testing.T) {
	fam := Families()[0]
	if _, err := NewModel(&Case{File: "c", Pods: []string{"w/a"}}, fam); err == nil || !strings.Contains(err.Error(), `pod "w/a"`) {
		t.Errorf("pod outside x, y, z: %v", err)
	}
	m, err := NewModel(&Case{Pods: []string{"x/a"}}, fam)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []Step{
		{Apply: "cidr: ${ip:y/q}"},
		{Apply: "cidr: ${mask:x/a}"},
		{PodLabels: map[string]map[string]string{"x/q": {"a": "b"}}},
		{Apply: "apiVersion: v1\nkind: Namespace\nmetadata: {name: q}\n"},
	} {
		if err := m.Apply(&st); err == nil {
			t.Errorf("step %+v applied", st)
		}
	}
}
