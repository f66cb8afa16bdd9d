package podnet

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/palisade-dev/palisade/internal/nsexec"
)

// Netns is a named network namespace, as `ip netns` names them: a file
// under /var/run/netns.
type Netns string

// netnsDir is where `ip netns add` pins namespaces.
const netnsDir = "/var/run/netns"

// Path is the namespace's file, what the enforcer's --netns takes.
func (n Netns) Path() string { return filepath.Join(netnsDir, string(n)) }

// Do runs fn on an OS thread inside the namespace. Sockets keep the
// namespace they were created in, so a listener or connection made in fn
// is usable from any goroutine afterwards.
func (n Netns) Do(fn func() error) error {
	return nsexec.Do(n.Path(), fn)
}

// Listen opens a stream listener inside the namespace. The caller closes
// it; Endpoint.Listen also closes it at teardown.
func (n Netns) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() (err error) {
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// ListenPacket opens a datagram socket inside the namespace.
func (n Netns) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}

// Dial connects from inside the namespace with d (nil: a zero Dialer).
func (n Netns) Dial(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	var c net.Conn
	err := n.Do(func() (err error) {
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Command runs a program inside the namespace through `ip netns exec`,
// exactly what CommandLine prints for a user to type.
func (n Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", string(n), name}, args...)...)
}

// CommandLine is the shell command that runs args inside the namespace.
func (n Netns) CommandLine(args ...string) string {
	return "ip netns exec " + string(n) + " " + strings.Join(args, " ")
}

// Exists reports whether the namespace's file is there.
func (n Netns) Exists() bool {
	_, err := os.Stat(n.Path())
	return err == nil
}

// sysctl sets net.* keys inside the namespace by writing /proc/sys from
// a thread in it: the kernel resolves /proc/sys/net for the opening
// thread's namespace, so no process is started per key.
func (n Netns) sysctl(kv ...string) error {
	return n.Do(func() error {
		for _, s := range kv {
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				return fmt.Errorf("sysctl %q: want key=value", s)
			}
			path := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
			if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s in %s: %w", s, n, err)
			}
		}
		return nil
	})
}

// ip runs one `ip -batch` in the namespace ("" for this process's own):
// one process for many commands, and an error naming the commands.
func ip(in Netns, cmds ...string) error {
	args := []string{"-batch", "-"}
	if in != "" {
		args = append([]string{"-n", string(in)}, args...)
	}
	c := exec.Command("ip", args...)
	c.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s -batch: %w: %s\ncommands:\n%s", in, err, strings.TrimSpace(string(out)), strings.Join(cmds, "\n"))
	}
	return nil
}

// addNetns creates a namespace with its loopback up.
func addNetns(name Netns) error {
	if out, err := exec.Command("ip", "netns", "add", string(name)).CombinedOutput(); err != nil {
		return fmt.Errorf("create network namespace %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return ip(name, "link set lo up")
}

// delNetns deletes a namespace's file; the kernel frees the namespace,
// and every veth end in it (so the peer end too), once no socket or
// thread holds it. Deleting one already gone is not an error.
func delNetns(name Netns) error {
	if !name.Exists() {
		return nil
	}
	if out, err := exec.Command("ip", "netns", "del", string(name)).CombinedOutput(); err != nil {
		return fmt.Errorf("delete network namespace %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Available returns why this process cannot build namespaces, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("iproute2's ip is not installed: %w", err)
	}
	return nil
}
