package chart_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/palisade-dev/palisade/enforcer/datapath"
)

// TestEnforcerServiceArgs: the service ranges and uplinks reach the
// enforcer as flags. Without --service-cidr every pod → ClusterIP flow
// (DNS included) is judged against the ClusterIP and dropped in isolated
// namespaces, so the default must pass the kubeadm/kind range.
func TestEnforcerServiceArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want []string // every arg naming a service range or an uplink, in order
	}{
		{"default: the kubeadm and kind range", nil, []string{"--service-cidr=10.96.0.0/12"}},
		{"dual-stack", values("enforcer.serviceCIDRs", []any{"10.43.0.0/16", "fd00:43::/112"}),
			[]string{"--service-cidr=10.43.0.0/16", "--service-cidr=fd00:43::/112"}},
		{"no ranges", values("enforcer.serviceCIDRs", []any{}), nil},
		{"uplinks named", values("enforcer.uplinkInterfaces", []any{"eth0", "bond0"}),
			[]string{"--service-cidr=10.96.0.0/12", "--uplink-interfaces=eth0,bond0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := enforcerArgs(t, tc.vals, "--service-cidr", "--uplink-interfaces"); !slices.Equal(got, tc.want) {
				t.Errorf("enforcer args %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEnforcerPodInterfacesArg: the pod interface patterns always reach
// the enforcer, the default being the binary's own, and an empty list turns
// quarantine off explicitly.
func TestEnforcerPodInterfacesArg(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"default: the binary's CNI patterns", nil, "--pod-interfaces=" + strings.Join(datapath.DefaultPodInterfaces, ",")},
		{"one CNI", values("enforcer.podInterfaces", []any{"cali*"}), "--pod-interfaces=cali*"},
		{"none", values("enforcer.podInterfaces", []any{}), "--pod-interfaces="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := enforcerArgs(t, tc.vals, "--pod-interfaces"); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("enforcer args %v, want %s", got, tc.want)
			}
		})
	}
}

// TestEnforcerConntrackShareArg: a pod's conntrack share reaches the
// enforcer as an integer flag only when set.
func TestEnforcerConntrackShareArg(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want []string
	}{
		{"default: an eighth of the table", nil, nil},
		{"set", values("enforcer.conntrackPerEndpoint", 1000000), []string{"--conntrack-per-endpoint=1000000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := enforcerArgs(t, tc.vals, "--conntrack-per-endpoint"); !slices.Equal(got, tc.want) {
				t.Errorf("enforcer args %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEnforcerMapSizeArgs: enforcer.maps.* reach the enforcer as --map-*
// flags, as integers (a large YAML number must not render as 1e+06);
// unset sizes pass no flag, so the compiled sizes apply.
func TestEnforcerMapSizeArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals map[string]any
		want []string
	}{
		{"default: compiled sizes", nil, nil},
		{"every map", values("enforcer.maps", map[string]any{"ipIdentity": 2000000, "endpoints": 512, "endpointIPs": 1024, "policy": 1048576,
			"policyRanges": 64, "serviceCIDRs": 4, "sourceCIDRs": 8, "conntrack": 1 << 20}),
			[]string{"--map-conntrack=1048576", "--map-endpoint-ips=1024", "--map-endpoints=512", "--map-ip-identity=2000000",
				"--map-policy-ranges=64", "--map-policy=1048576", "--map-service-cidrs=4", "--map-source-cidrs=8"}},
		{"one map", values("enforcer.maps.policy", 131072), []string{"--map-policy=131072"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := enforcerArgs(t, tc.vals, "--map-")
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("enforcer map args %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEnforcerKnowsItsDaemonSet: the enforcer is told its own DaemonSet
// (gone when it stops means an uninstall: it then removes its pins), and
// its Role lets it get exactly that one, in the release namespace.
func TestEnforcerKnowsItsDaemonSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		rl   rel
		vals map[string]any
	}{
		{"default release", defaultRelease, nil},
		{"other name and namespace", rel{"edge", "edge-system"}, values("fullnameOverride", "fence")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, tc.rl, tc.vals)
			ds := typed[appsv1.DaemonSet](t, r.oneComponent(t, "DaemonSet", "enforcer"))
			args := ds.Spec.Template.Spec.Containers[0].Args
			for _, want := range []string{"--daemonset=" + ds.Name, "--daemonset-namespace=" + ds.Namespace} {
				if !slices.Contains(args, want) {
					t.Errorf("enforcer args %v lack %s", args, want)
				}
			}
			role := typed[rbacv1.Role](t, r.oneComponent(t, "Role", "enforcer"))
			want := []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"daemonsets"}, ResourceNames: []string{ds.Name}, Verbs: []string{"get"}}}
			if role.Namespace != tc.rl.namespace || !reflect.DeepEqual(role.Rules, want) {
				t.Errorf("enforcer Role in %q with rules %+v, want in %q: %+v", role.Namespace, role.Rules, tc.rl.namespace, want)
			}
			sa := r.oneComponent(t, "ServiceAccount", "enforcer")
			rb := typed[rbacv1.RoleBinding](t, r.oneComponent(t, "RoleBinding", "enforcer"))
			wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.GetName(), Namespace: tc.rl.namespace}}
			if rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}) || !reflect.DeepEqual(rb.Subjects, wantSubjects) {
				t.Errorf("enforcer RoleBinding %+v %+v, want the Role bound to %+v", rb.RoleRef, rb.Subjects, wantSubjects)
			}
		})
	}
}

// enforcerArgs renders the default release with vals and returns the
// enforcer's args that start with one of prefixes, in order.
func enforcerArgs(t *testing.T, vals map[string]any, prefixes ...string) []string {
	t.Helper()
	r := mustRender(t, defaultRelease, vals)
	ds := typed[appsv1.DaemonSet](t, r.oneComponent(t, "DaemonSet", "enforcer"))
	var got []string
	for _, a := range ds.Spec.Template.Spec.Containers[0].Args {
		for _, p := range prefixes {
			if strings.HasPrefix(a, p) {
				got = append(got, a)
				break
			}
		}
	}
	return got
}
