package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// ErrUnsupported is wrapped by every error Open returns because the node
// lacks something the datapath needs; a *MissingFeatureError says what.
var ErrUnsupported = errors.New("node cannot run the datapath")

// MissingFeatureError names one missing privilege or kernel feature.
type MissingFeatureError struct {
	Feature string
	Detail  string
}

func (e *MissingFeatureError) Error() string {
	return fmt.Sprintf("%s: missing %s: %s", ErrUnsupported, e.Feature, e.Detail)
}

func (e *MissingFeatureError) Unwrap() error { return ErrUnsupported }

const (
	capNetAdmin = 12
	capSysAdmin = 21
	capBPF      = 39
)

// featureProbes are the node facts Open checks, replaceable in tests.
type featureProbes struct {
	// effectiveCaps returns the effective capability set as a bit mask.
	effectiveCaps func() (uint64, error)
	// tcx returns ebpf.ErrNotSupported when the kernel lacks tcx links.
	tcx func() error
	// ringbuf returns ebpf.ErrNotSupported without ring buffer maps.
	ringbuf func() error
	btfPath string
	// fsMagic returns the filesystem type of path (statfs f_type).
	fsMagic func(path string) (int64, error)
	// kernelRelease is quoted in messages.
	kernelRelease func() string
}

func nodeProbes() featureProbes {
	return featureProbes{
		effectiveCaps: effectiveCaps,
		tcx:           probeTCX,
		ringbuf:       func() error { return features.HaveMapType(ebpf.RingBuf) },
		btfPath:       "/sys/kernel/btf/vmlinux",
		fsMagic: func(path string) (int64, error) {
			var st unix.Statfs_t
			if err := unix.Statfs(path, &st); err != nil {
				return 0, err
			}
			return int64(st.Type), nil
		},
		kernelRelease: kernelRelease,
	}
}

// checkFeatures returns the first thing missing for running the datapath
// with pins under pinDir, privileges first since every other probe needs
// them.
func checkFeatures(p featureProbes, pinDir string) error {
	caps, err := p.effectiveCaps()
	if err != nil {
		return &MissingFeatureError{"privileges", fmt.Sprintf("read capabilities: %v", err)}
	}
	has := func(c uint) bool { return caps&(1<<c) != 0 }
	if !has(capBPF) && !has(capSysAdmin) {
		return &MissingFeatureError{"privileges", "CAP_BPF (or CAP_SYS_ADMIN) is not effective: run as root or grant CAP_BPF"}
	}
	if !has(capNetAdmin) {
		return &MissingFeatureError{"privileges", "CAP_NET_ADMIN is not effective: attaching tc programs needs it"}
	}
	if _, err := os.Stat(p.btfPath); err != nil {
		return &MissingFeatureError{"BTF", fmt.Sprintf("kernel BTF not found at %s (kernel %s built without CONFIG_DEBUG_INFO_BTF?)", p.btfPath, p.kernelRelease())}
	}
	if err := p.tcx(); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return &MissingFeatureError{"tcx", fmt.Sprintf("kernel %s has no tcx links: Linux 6.6 or newer needed", p.kernelRelease())}
		}
		return &MissingFeatureError{"tcx", fmt.Sprintf("probe tcx links: %v", err)}
	}
	if err := p.ringbuf(); err != nil {
		return &MissingFeatureError{"ring buffer", fmt.Sprintf("kernel %s has no BPF ring buffer maps: %v", p.kernelRelease(), err)}
	}
	return checkBPFFS(p, pinDir)
}

// checkBPFFS requires the nearest existing ancestor of pinDir (or pinDir
// itself) to be a bpf filesystem: pins anywhere else would fail, or
// vanish with the process.
func checkBPFFS(p featureProbes, pinDir string) error {
	dir := filepath.Clean(pinDir)
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	magic, err := p.fsMagic(dir)
	if err != nil {
		return &MissingFeatureError{"bpffs", fmt.Sprintf("statfs %s: %v", dir, err)}
	}
	if magic != unix.BPF_FS_MAGIC {
		return &MissingFeatureError{"bpffs", fmt.Sprintf("%s is not on a bpf filesystem (pin directory %s): mount one with `mount -t bpf bpf /sys/fs/bpf`", dir, pinDir)}
	}
	return nil
}

func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, err
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

// probeTCX attaches a no-op program to an interface index that cannot
// exist: a kernel with tcx answers "no such device", one without it
// "invalid argument", which link.AttachTCX reports as ErrNotSupported.
func probeTCX() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("load probe program: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachTCX(link.TCXOptions{Interface: int(^uint32(0)), Program: prog, Attach: ebpf.AttachTCXIngress})
	if err == nil {
		l.Close()
		return nil
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	if errors.Is(err, unix.ENODEV) {
		return nil
	}
	return fmt.Errorf("attach probe: %w", err)
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
