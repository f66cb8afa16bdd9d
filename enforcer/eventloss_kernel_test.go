package enforcer

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/enforcer/policy"
	"github.com/palisade-dev/palisade/internal/testkit/podnet"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// A pod whose refused packets outrun its event budget gets, at the next
// report, one flow record "N events of POD lost" and N more in the lost
// events metric: real kernel, real packets, the agent's own reporter.
func TestLostEventsAreReportedPerPod(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "the datapath needs root (BPF, tcx, network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.SkipOrFail(t, "iproute2's ip is not installed: %v", err)
	}
	node := newRoutedNode(t, "10.244.0.2")
	pod := podnet.Netns(strings.TrimSuffix(node.name, "-node") + "-web")
	if out, err := exec.Command("ip", "-n", string(pod), "route", "add", "default", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("route in the pod: %v: %s", err, out)
	}
	dp, err := datapath.Open(datapath.Options{PinDir: bpffsDir(t), NetNS: node.path(),
		Config: bpf.Config{DropEventInterval: time.Hour, DropEventBurst: 1}})
	if err != nil {
		testenv.SkipOrFail(t, "open the datapath: %v", err)
	}
	t.Cleanup(func() { dp.Remove() })
	c, err := policy.ReadManifests("test", strings.NewReader(`apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {namespace: shop, name: web, labels: {app: web}}
spec: {nodeName: node1, containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.244.0.2, podIPs: [{ip: 10.244.0.2}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: shop, name: deny-all}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := policy.Compile(c, policy.Options{NodeName: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	if stats, err := dp.Sync(context.Background(), st, dp.Endpoint); err != nil || len(stats.Unresolved) > 0 {
		t.Fatalf("sync: %v (unresolved %v)", err, stats.Unresolved)
	}

	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	a := &Agent{opts: Options{NodeName: "node1", Logger: slog.New(slog.DiscardHandler)}, metrics: m, flows: &flowWriter{w: &out}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.reportEventLosses(ctx, dp, 50*time.Millisecond)
	time.Sleep(150 * time.Millisecond) // the first read: the baseline

	const packets = 200
	conn, err := pod.Dial(context.Background(), nil, "udp", "10.244.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	for range packets {
		conn.Write([]byte("refused\n"))
	}
	conn.Close()
	counters, err := dp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	limited := counters["drop_event_rate_limited"]
	if limited == 0 || limited > packets {
		t.Fatalf("drop_event_rate_limited = %d after %d refused datagrams", limited, packets)
	}

	var lost uint64
	deadline := time.Now().Add(5 * time.Second)
	for lost < limited && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		lost = 0
		for _, line := range bytes.Split(out.Bytes(), []byte("\n")) {
			var r FlowRecord
			if len(line) == 0 || json.Unmarshal(line, &r) != nil || r.Verdict != "lost" {
				continue
			}
			if r.Pod != "shop/web" || !strings.Contains(r.Reason, " events of shop/web lost") {
				t.Errorf("lost record %+v: want pod shop/web and a reason naming it", r)
			}
			lost += r.Lost
		}
	}
	if lost != limited {
		t.Errorf("lost records count %d events, the kernel did not send %d", lost, limited)
	}
	var metric dto.Metric
	if err := m.eventsLost.WithLabelValues("shop/web").Write(&metric); err != nil {
		t.Fatal(err)
	}
	if got := metric.GetCounter().GetValue(); got != float64(limited) {
		t.Errorf("palisade_enforcer_flow_events_lost_total{pod=shop/web} = %v, want %d", got, limited)
	}
}

// lockedBuffer is a bytes.Buffer the reporter writes while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}
