package policy

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestSourceCIDRsAnnotation(t *testing.T) {
	prefixes := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		value   string
		want    []netip.Prefix
		problem string // in the error; "" for none
	}{
		{name: "dual-stack ranges", value: "10.9.0.0/16,fd00::/64", want: prefixes("10.9.0.0/16", "fd00::/64")},
		{name: "spaces, duplicates and order", value: " fd00::/64 , 10.9.0.0/16,10.9.0.0/16", want: prefixes("10.9.0.0/16", "fd00::/64")},
		{name: "a single address", value: "192.0.2.7/32", want: prefixes("192.0.2.7/32")},
		{name: "not a CIDR", value: "10.9.0.0/16,10.10.0.1", problem: `entry 1: "10.10.0.1" is not a CIDR`},
		{name: "host bits set", value: "10.9.1.0/16", problem: `entry 0: "10.9.1.0/16" has host bits set; the range is 10.9.0.0/16`},
		{name: "empty entry", value: "10.9.0.0/16,", problem: "entry 1 is empty"},
		{name: "empty value", value: "", problem: "entry 0 is empty"},
		{name: "ipv4-mapped", value: "::ffff:10.9.0.0/112", problem: "IPv4-mapped"},
		{name: "zone", value: "fe80::%eth0/64", problem: "is not a CIDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pods := []corev1.Pod{testPod("x", "vpn", "10.0.0.1,fd00::1", "app=vpn"), testPod("x", "web", "10.0.0.2", "app=web")}
			pods[0].Annotations = map[string]string{AnnotationSourceCIDRs: tc.value}
			s, err := Compile(testCluster(t, []corev1.Namespace{testNS("x")}, pods, ""), Options{})
			if s == nil {
				t.Fatalf("compile returned no State: %v", err)
			}
			vpn, ok := s.Endpoint(PodRef{"x", "vpn"})
			if !ok {
				t.Fatal("no endpoint for x/vpn")
			}
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("compile: %v", err)
				}
				if !reflect.DeepEqual(vpn.SourceCIDRs, tc.want) {
					t.Errorf("source CIDRs %v, want %v", vpn.SourceCIDRs, tc.want)
				}
			} else {
				var oe *InvalidObjectError
				if !errors.As(err, &oe) || oe.Kind != "pod" || oe.Name != "x/vpn" || !strings.Contains(oe.Problem, AnnotationSourceCIDRs) || !strings.Contains(oe.Problem, tc.problem) {
					t.Fatalf("want an error naming pod x/vpn, the annotation and %q; got %v", tc.problem, err)
				}
				if len(vpn.SourceCIDRs) != 0 {
					t.Errorf("an invalid annotation granted %v; want nothing (fail closed)", vpn.SourceCIDRs)
				}
			}
			if web, _ := s.Endpoint(PodRef{"x", "web"}); len(web.SourceCIDRs) != 0 {
				t.Errorf("a pod without the annotation got %v", web.SourceCIDRs)
			}
		})
	}
}

// FuzzSourceCIDRs: any annotation value parses into canonical prefixes or
// fails with nothing granted, never a panic.
func FuzzSourceCIDRs(f *testing.F) {
	for _, s := range []string{"10.9.0.0/16,fd00::/64", "10.9.1.0/16", "", ",", "::ffff:1.2.3.4/128", "0.0.0.0/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		ps, err := parseSourceCIDRs(value)
		if err != nil {
			if ps != nil {
				t.Fatalf("error %v with prefixes %v", err, ps)
			}
			return
		}
		if len(ps) == 0 {
			t.Fatal("no error and no prefix")
		}
		for _, p := range ps {
			if !p.IsValid() || p.Masked() != p || p.Addr().Zone() != "" {
				t.Fatalf("%q gave non-canonical %v", value, p)
			}
		}
	})
}
