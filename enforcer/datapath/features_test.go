package datapath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func TestCheckFeaturesNamesTheMissingOne(t *testing.T) {
	btf := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(btf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	good := func() featureProbes {
		return featureProbes{
			effectiveCaps: func() (uint64, error) { return 1<<capBPF | 1<<capNetAdmin, nil },
			tcx:           func() error { return nil },
			ringbuf:       func() error { return nil },
			btfPath:       btf,
			fsMagic:       func(string) (int64, error) { return unix.BPF_FS_MAGIC, nil },
			kernelRelease: func() string { return "6.1.0" },
		}
	}
	cases := []struct {
		name    string
		break_  func(p *featureProbes)
		feature string
		detail  string
	}{
		{"all present", func(*featureProbes) {}, "", ""},
		{"sys_admin instead of bpf", func(p *featureProbes) {
			p.effectiveCaps = func() (uint64, error) { return 1<<capSysAdmin | 1<<capNetAdmin, nil }
		}, "", ""},
		{"not root", func(p *featureProbes) { p.effectiveCaps = func() (uint64, error) { return 0, nil } }, "privileges", "CAP_BPF"},
		{"no net_admin", func(p *featureProbes) { p.effectiveCaps = func() (uint64, error) { return 1 << capBPF, nil } }, "privileges", "CAP_NET_ADMIN"},
		{"no btf", func(p *featureProbes) { p.btfPath = filepath.Join(t.TempDir(), "none") }, "BTF", "kernel BTF not found"},
		{"old kernel", func(p *featureProbes) { p.tcx = func() error { return ebpf.ErrNotSupported } }, "tcx", "kernel 6.1.0 has no tcx links: Linux 6.6 or newer needed"},
		{"no ring buffer", func(p *featureProbes) { p.ringbuf = func() error { return ebpf.ErrNotSupported } }, "ring buffer", "no BPF ring buffer"},
		{"bpffs not mounted", func(p *featureProbes) { p.fsMagic = func(string) (int64, error) { return unix.SYSFS_MAGIC, nil } }, "bpffs", "mount -t bpf bpf /sys/fs/bpf"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := good()
			c.break_(&p)
			err := checkFeatures(p, "/sys/fs/bpf/palisade/node1")
			if c.feature == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v does not wrap ErrUnsupported", err)
			}
			var mf *MissingFeatureError
			if !errors.As(err, &mf) || mf.Feature != c.feature {
				t.Fatalf("error %v does not name feature %q", err, c.feature)
			}
			if !strings.Contains(err.Error(), c.detail) {
				t.Errorf("error %q lacks %q", err, c.detail)
			}
		})
	}
}

// The bpffs check looks at the nearest directory that exists, since the
// pin directory itself is created by Open.
func TestCheckBPFFSWalksUpToAnExistingDirectory(t *testing.T) {
	root := t.TempDir()
	var asked string
	p := featureProbes{fsMagic: func(path string) (int64, error) { asked = path; return unix.BPF_FS_MAGIC, nil }}
	if err := checkBPFFS(p, filepath.Join(root, "palisade", "node1")); err != nil {
		t.Fatal(err)
	}
	if asked != root {
		t.Errorf("statfs asked about %s, want %s", asked, root)
	}
}

func TestPinDirFromNodeName(t *testing.T) {
	cases := []struct {
		opts Options
		want string
		err  bool
	}{
		{Options{NodeName: "node-a"}, "/sys/fs/bpf/palisade/node-a", false},
		{Options{NodeName: "node-a", PinDir: "/sys/fs/bpf/x/../y"}, "/sys/fs/bpf/y", false},
		{Options{}, "", true},
		{Options{NodeName: ".."}, "", true},
		{Options{NodeName: "a/b"}, "", true},
	}
	for _, c := range cases {
		got, err := c.opts.pinDir()
		if got != c.want || (err != nil) != c.err {
			t.Errorf("%+v: got %q, %v; want %q, error %v", c.opts, got, err, c.want, c.err)
		}
	}
}
