package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/datapath"
)

func TestEnforcerFlags(t *testing.T) {
	defaults := func(c enforcerConfig) enforcerConfig {
		if c.metricsAddr == "" {
			c.metricsAddr = ":9962"
		}
		if c.healthAddr == "" {
			c.healthAddr = ":9963"
		}
		c.flowStdout = true
		if c.podInterfaces == nil {
			c.podInterfaces = datapath.DefaultPodInterfaces
		}
		return c
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     string // NODE_NAME
		podNS   string // POD_NAMESPACE
		want    enforcerConfig
		wantErr string
	}{
		{name: "node name from the downward API", env: "node-a", want: defaults(enforcerConfig{nodeName: "node-a"})},
		{name: "flag beats the environment", env: "node-a", args: []string{"--node-name=node-b"}, want: defaults(enforcerConfig{nodeName: "node-b"})},
		{
			name: "everything set",
			args: []string{"--kubeconfig=k", "--node-name=n1", "--pin-dir=/sys/fs/bpf/x", "--standard=s.yaml", "--flow-file=f.jsonl", "--flow-stdout=false",
				"--metrics-bind-address=127.0.0.1:1", "--health-probe-bind-address=0", "--host-ips=10.0.0.5, fd00::5,::ffff:10.0.0.6", "--netns=/run/netns/n1"},
			want: enforcerConfig{kubeconfig: "k", nodeName: "n1", pinDir: "/sys/fs/bpf/x", standard: "s.yaml", flowFile: "f.jsonl",
				metricsAddr: "127.0.0.1:1", healthAddr: "0", netns: "/run/netns/n1", podInterfaces: datapath.DefaultPodInterfaces,
				hostIPs: []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5"), netip.MustParseAddr("10.0.0.6")}},
		},
		{name: "netns by name", args: []string{"--node-name=n", "--netns=node1"}, want: defaults(enforcerConfig{nodeName: "n", netns: "/var/run/netns/node1"})},
		{name: "host IPs repeated", args: []string{"--node-name=n", "--host-ips=10.0.0.1", "--host-ips=10.0.0.2"},
			want: defaults(enforcerConfig{nodeName: "n", hostIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}})},
		{name: "service ranges", args: []string{"--node-name=n", "--service-cidr=10.96.0.0/16, fd00:96::/112", "--service-cidr=10.97.0.0/16"},
			want: defaults(enforcerConfig{nodeName: "n", serviceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd00:96::/112"), netip.MustParsePrefix("10.97.0.0/16")}})},
		{name: "uplinks named", args: []string{"--node-name=n", "--service-cidr=10.96.0.0/16", "--uplink-interfaces=eth0,flannel.1"},
			want: defaults(enforcerConfig{nodeName: "n", serviceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")}, uplinks: []string{"eth0", "flannel.1"}})},
		{name: "bad service range", args: []string{"--node-name=n", "--service-cidr=10.96.0.0"}, wantErr: `--service-cidr: "10.96.0.0" is not a CIDR range`},
		{name: "service range with host bits", args: []string{"--node-name=n", "--service-cidr=10.96.0.1/16"}, wantErr: `--service-cidr: "10.96.0.1/16" has host bits set; the range is 10.96.0.0/16`},
		{name: "uplinks without service ranges", args: []string{"--node-name=n", "--uplink-interfaces=eth0"}, wantErr: "--uplink-interfaces: needs --service-cidr"},
		{name: "bad uplink name", args: []string{"--node-name=n", "--service-cidr=10.96.0.0/16", "--uplink-interfaces=eth0,a/b"}, wantErr: `--uplink-interfaces: "a/b" is not an interface name`},
		{name: "daemonset, namespace from the downward API", podNS: "palisade-system", args: []string{"--node-name=n", "--daemonset=palisade-enforcer"},
			want: defaults(enforcerConfig{nodeName: "n", daemonSet: "palisade-enforcer", daemonSetNamespace: "palisade-system"})},
		{name: "daemonset namespace flag beats the environment", podNS: "palisade-system", args: []string{"--node-name=n", "--daemonset=e", "--daemonset-namespace=other"},
			want: defaults(enforcerConfig{nodeName: "n", daemonSet: "e", daemonSetNamespace: "other"})},
		{name: "namespace without a daemonset is unused", podNS: "palisade-system", args: []string{"--node-name=n"},
			want: defaults(enforcerConfig{nodeName: "n"})},
		{name: "daemonset without a namespace", args: []string{"--node-name=n", "--daemonset=e"}, wantErr: "--daemonset-namespace: empty; set it or POD_NAMESPACE"},
		{name: "map sizes", args: []string{"--node-name=n", "--map-policy=1000", "--map-ip-identity=2000000", "--map-endpoints=512", "--map-endpoint-ips=1024",
			"--map-policy-ranges=64", "--map-service-cidrs=4", "--map-source-cidrs=8", "--map-conntrack=1048576"},
			want: defaults(enforcerConfig{nodeName: "n", maps: bpf.Config{Policy: 1000, IPIdentity: 2000000, Endpoints: 512, EndpointIPs: 1024,
				PolicyRanges: 64, ServiceCIDRs: 4, SourceCIDRs: 8, Conntrack: 1 << 20}})},
		{name: "map size zero", args: []string{"--node-name=n", "--map-policy=0"}, wantErr: "--map-policy: 0 entries; must be between 1 and 16777216"},
		{name: "map size too big", args: []string{"--node-name=n", "--map-conntrack=16777217"}, wantErr: "--map-conntrack: 16777217 entries; must be between 1 and 16777216"},
		{name: "map size negative", args: []string{"--node-name=n", "--map-endpoints=-1"}, wantErr: `invalid argument "-1" for "--map-endpoints"`},
		{name: "conntrack share", args: []string{"--node-name=n", "--map-conntrack=4096", "--conntrack-per-endpoint=512"},
			want: defaults(enforcerConfig{nodeName: "n", maps: bpf.Config{Conntrack: 4096, ConntrackPerEndpoint: 512}})},
		{name: "conntrack share over the table", args: []string{"--node-name=n", "--map-conntrack=4096", "--conntrack-per-endpoint=4097"},
			wantErr: "--conntrack-per-endpoint: 4097 entries; must be between 1 and the conntrack map's 4096 (--map-conntrack)"},
		{name: "conntrack share over the compiled table", args: []string{"--node-name=n", "--conntrack-per-endpoint=300000"},
			wantErr: "--conntrack-per-endpoint: 300000 entries; must be between 1 and the conntrack map's 262144 (--map-conntrack)"},
		{name: "conntrack share zero", args: []string{"--node-name=n", "--conntrack-per-endpoint=0"},
			wantErr: "--conntrack-per-endpoint: 0 entries; must be between 1 and the conntrack map's 262144 (--map-conntrack)"},
		{name: "map size not a number", args: []string{"--node-name=n", "--map-ip-identity=1M"}, wantErr: `invalid argument "1M" for "--map-ip-identity"`},
		{name: "pod interfaces named", args: []string{"--node-name=n", "--pod-interfaces=cali*,lxc*"},
			want: defaults(enforcerConfig{nodeName: "n", podInterfaces: []string{"cali*", "lxc*"}})},
		{name: "no quarantine", args: []string{"--node-name=n", "--pod-interfaces="}, want: defaults(enforcerConfig{nodeName: "n", podInterfaces: []string{}})},
		{name: "bad pod interface pattern", args: []string{"--node-name=n", "--pod-interfaces=veth["}, wantErr: `--pod-interfaces: pod interface pattern "veth[": syntax error in pattern`},
		{name: "no node name", wantErr: "--node-name: empty; set it or NODE_NAME"},
		{name: "bad host IP", args: []string{"--node-name=n", "--host-ips=10.0.0.1,node1"}, wantErr: `--host-ips: "node1" is not an IP address`},
		{name: "zoned host IP", args: []string{"--node-name=n", "--host-ips=fe80::1%eth0"}, wantErr: `--host-ips: "fe80::1%eth0" is not an IP address`},
		{name: "flow-stdout not a bool", args: []string{"--node-name=n", "--flow-stdout=maybe"}, wantErr: `invalid argument "maybe" for "--flow-stdout"`},
		{name: "no arguments", args: []string{"--node-name=n", "extra"}, wantErr: `unknown command "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NODE_NAME", tc.env)
			t.Setenv("POD_NAMESPACE", tc.podNS)
			var got enforcerConfig
			called := false
			cmd := newEnforcerCommand(func(_ context.Context, c enforcerConfig) error { got, called = c, true; return nil })
			cmd.SetArgs(tc.args)
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.ExecuteContext(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if called {
					t.Error("run was called despite the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config = %+v\nwant     %+v", got, tc.want)
			}
		})
	}
}

// Bad flags and input files exit 2, before the node or the cluster is
// touched.
func TestEnforcerUsageErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	badStandard := filepath.Join(dir, "standard.yaml")
	if err := os.WriteFile(badStandard, []byte("apiVersion: palisade.dev/v1alpha1\nkind: LabelingStandard\nmetadata: {name: x, version: '1'}\nspec:\n  identityLabels: [app]\n  labelz: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing node name", []string{"--node-name="}, "--node-name: empty"},
		{"bad standard", []string{"--node-name=n", "--standard", badStandard}, badStandard + ":6: "},
		{"bad host IP", []string{"--node-name=n", "--host-ips=x"}, `"x" is not an IP address`},
		{"map size out of range", []string{"--node-name=n", "--map-policy=0"}, "--map-policy: 0 entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errOut bytes.Buffer
			cmd := newEnforcerCommand(runEnforcer)
			cmd.SilenceErrors, cmd.SilenceUsage = true, true
			code := execute(context.Background(), cmd, tc.args, &errOut)
			if code != 2 || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q: want 2 naming %q", code, errOut.String(), tc.want)
			}
		})
	}
}

// A node that cannot run the datapath stops start-up with one error naming
// what is missing: here a pin directory outside any bpf filesystem.
func TestEnforcerNamesMissingFeature(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	// A cluster nobody serves: start-up must fail before contacting it.
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := enforcerConfig{kubeconfig: kubeconfig, nodeName: "n1", pinDir: filepath.Join(t.TempDir(), "pins"), metricsAddr: "0", healthAddr: "0"}
	err := runEnforcer(context.Background(), cfg)
	if !errors.Is(err, datapath.ErrUnsupported) {
		t.Fatalf("error %v does not wrap datapath.ErrUnsupported", err)
	}
	var mf *datapath.MissingFeatureError
	if !errors.As(err, &mf) {
		t.Fatalf("error %v names no feature", err)
	}
	want := "bpffs"
	if os.Geteuid() != 0 {
		want = "privileges"
	}
	if mf.Feature != want || !strings.Contains(err.Error(), "missing "+want) {
		t.Errorf("error %q: want the missing feature %q named", err, want)
	}
}

func TestEnforcerCleanupFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    enforcerCleanupConfig
		wantErr string
	}{
		{name: "defaults: every node's directory", want: enforcerCleanupConfig{}},
		{name: "one pin directory", args: []string{"--pin-dir=/sys/fs/bpf/palisade/node1/"}, want: enforcerCleanupConfig{pinDir: "/sys/fs/bpf/palisade/node1"}},
		{name: "netns by name", args: []string{"--netns=node1"}, want: enforcerCleanupConfig{netns: "/var/run/netns/node1"}},
		{name: "no arguments", args: []string{"/sys/fs/bpf/palisade"}, wantErr: `unknown command "/sys/fs/bpf/palisade"`},
		{name: "no enforcer flags", args: []string{"--node-name=n"}, wantErr: "unknown flag: --node-name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got enforcerCleanupConfig
			called := false
			cmd := newEnforcerCleanupCommand(func(_ context.Context, c enforcerCleanupConfig, _ io.Writer) error { got, called = c, true; return nil })
			cmd.SetArgs(tc.args)
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.ExecuteContext(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || called {
					t.Fatalf("err = %v (run called: %t), want %q", err, called, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("config = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// `palisade enforcer cleanup` is a subcommand of the enforcer, and a pin
// directory that does not exist is nothing to remove, not an error.
func TestEnforcerCleanupNothingPinned(t *testing.T) {
	var out bytes.Buffer
	cmd := newEnforcerCommand(func(context.Context, enforcerConfig) error { t.Error("the enforcer ran"); return nil })
	cmd.SetArgs([]string{"cleanup", "--pin-dir", filepath.Join(t.TempDir(), "missing")})
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "nothing pinned") {
		t.Errorf("output %q, want it to say nothing is pinned", out.String())
	}
}
