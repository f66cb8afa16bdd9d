package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/palisade-dev/palisade/enforcer"
	"github.com/palisade-dev/palisade/internal/testkit/childproc"
	"github.com/palisade-dev/palisade/internal/testkit/podnet"
)

// enforcerProc is one node's `palisade enforcer` process. It runs in the
// host's namespace (it reaches the API server on loopback) and manages the
// interfaces of its node's namespace (--netns).
type enforcerProc struct {
	node        *node
	bin         string
	args        []string
	logPath     string
	flowPath    string
	metricsAddr string
	healthAddr  string

	mu   sync.Mutex
	proc *childproc.Process
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (w *world) newEnforcer(n *node) *enforcerProc {
	e := &enforcerProc{
		node:        n,
		bin:         w.bin,
		logPath:     filepath.Join(w.dir, n.net.name+"-enforcer.log"),
		flowPath:    filepath.Join(w.dir, n.net.name+"-flows.jsonl"),
		metricsAddr: freeAddr(),
		healthAddr:  freeAddr(),
	}
	e.args = []string{"enforcer",
		"--kubeconfig", w.kubeconfig,
		"--node-name", n.net.name,
		"--netns", podnet.Netns(n.netns).Path(),
		"--pin-dir", filepath.Join(w.pinRoot, n.net.name),
		"--flow-file", e.flowPath,
		"--flow-stdout=false",
		"--metrics-bind-address", e.metricsAddr,
		"--health-probe-bind-address", e.healthAddr,
		"--host-ips", strings.Join(n.net.hostIP, ","),
		// The pod interfaces, routed (world.podNetwork) and bridged: each is
		// quarantined from its first packet until its pod is known.
		"--pod-interfaces", "v*,b*",
	}
	if w.enforcerServiceCIDR {
		for _, cidr := range serviceCIDRs {
			e.args = append(e.args, "--service-cidr", cidr)
		}
	}
	w.onTeardown(e.stop)
	return e
}

// start runs the process. Its parent-death signal is tied to a thread
// that lives as long as the process, so a crashed test run leaves no
// enforcer behind.
func (e *enforcerProc) start() error {
	log, err := os.OpenFile(e.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(e.bin, e.args...)
	cmd.Stdout, cmd.Stderr = log, log
	proc, err := childproc.Start(cmd, log)
	if err != nil {
		return fmt.Errorf("start enforcer of %s: %w", e.node.net.name, err)
	}
	e.mu.Lock()
	e.proc = proc
	e.mu.Unlock()
	return nil
}

func (e *enforcerProc) process() *childproc.Process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.proc
}

// kill sends SIGKILL and waits for the process to be gone: no shutdown
// path runs.
func (e *enforcerProc) kill() {
	if p := e.process(); p != nil {
		p.Kill()
	}
}

// stop asks the process to stop (SIGTERM), then kills it after 5s.
func (e *enforcerProc) stop() {
	if p := e.process(); p != nil {
		p.Stop(5 * time.Second)
	}
}

func (e *enforcerProc) running() bool {
	p := e.process()
	return p != nil && p.Running()
}

// waitReady polls /readyz until the enforcer has enforced its first
// State.
func (e *enforcerProc) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if !e.running() {
			return fmt.Errorf("enforcer of %s exited:\n%s", e.node.net.name, e.logTail(30))
		}
		resp, err := http.Get("http://" + e.healthAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("enforcer of %s not ready after %v:\n%s", e.node.net.name, within, e.logTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metrics scrapes /metrics into "name{labels}" → value.
func (e *enforcerProc) metrics() (map[string]float64, error) {
	resp, err := http.Get("http://" + e.metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// waitMetrics waits until every named series has its wanted value.
func (e *enforcerProc) waitMetrics(within time.Duration, want map[string]float64) error {
	deadline := time.Now().Add(within)
	for {
		m, err := e.metrics()
		var off []string
		if err != nil {
			off = append(off, err.Error())
		} else {
			for _, k := range sortedKeys(want) {
				if m[k] != want[k] {
					off = append(off, fmt.Sprintf("%s = %v, want %v", k, m[k], want[k]))
				}
			}
		}
		if len(off) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("enforcer of %s after %v: %s", e.node.net.name, within, strings.Join(off, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flows reads the flow records written so far.
func (e *enforcerProc) flows() ([]enforcer.FlowRecord, error) {
	data, err := os.ReadFile(e.flowPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []enforcer.FlowRecord
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r enforcer.FlowRecord
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", e.flowPath, i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// waitFlow waits for a flow record matching match.
func (e *enforcerProc) waitFlow(within time.Duration, match func(enforcer.FlowRecord) bool) (enforcer.FlowRecord, error) {
	deadline := time.Now().Add(within)
	for {
		recs, err := e.flows()
		if err != nil {
			return enforcer.FlowRecord{}, err
		}
		for _, r := range recs {
			if match(r) {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			tail := recs
			if len(tail) > 10 {
				tail = tail[len(tail)-10:]
			}
			var b strings.Builder
			for _, r := range tail {
				j, _ := json.Marshal(r)
				b.Write(j)
				b.WriteByte('\n')
			}
			return enforcer.FlowRecord{}, fmt.Errorf("no matching flow record on %s within %v; the last ones:\n%s", e.node.net.name, within, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logTail returns the last n lines of the process's log.
func (e *enforcerProc) logTail(n int) string {
	f, err := os.Open(e.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
