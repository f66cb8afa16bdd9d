package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// The world is shared by every test (a control plane and two enforcers
// cost seconds to start); tests run one at a time and each undoes what it
// changes.
var (
	shared     *world
	sharedSkip string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if reason := prerequisites(); reason != "" {
		sharedSkip = reason
		return m.Run()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	w, err := startWorld(ctx)
	defer w.teardown()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: set up the world:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: world ready in %v (control plane, 2 nodes, %d pods, 2 enforcers)\n", time.Since(start).Round(time.Millisecond), len(w.pods))
	shared = w
	code := m.Run()
	if code != 0 {
		for _, name := range []string{"node1", "node2"} {
			fmt.Fprintf(os.Stderr, "--- enforcer of %s, last log lines:\n%s\n", name, w.nodes[name].enforcer.logTail(40))
		}
	}
	return code
}

// needWorld returns the shared world, or skips (fails under
// PALISADE_REQUIRE_PRIVILEGED=1) with the reason there is none.
func needWorld(t testing.TB) *world {
	t.Helper()
	if shared == nil {
		testenv.SkipOrFail(t, "%s", sharedSkip)
	}
	return shared
}

// decodePolicies reads a YAML stream of NetworkPolicies.
func decodePolicies(manifests string) ([]client.Object, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(manifests)), 4096)
	var out []client.Object
	for i := 1; ; i++ {
		np := &networkingv1.NetworkPolicy{}
		if err := dec.Decode(np); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("manifest document %d: %w", i, err)
		}
		if np.Name == "" {
			continue // an empty document
		}
		if np.Kind != "NetworkPolicy" {
			return nil, fmt.Errorf("manifest document %d: kind %q: only NetworkPolicies are applied", i, np.Kind)
		}
		out = append(out, np)
	}
}

// withPolicies applies manifests for the rest of the test and waits, at
// cleanup, until both enforcers have enforced their removal.
func withPolicies(t testing.TB, w *world, manifests string) []client.Object {
	t.Helper()
	ctx := context.Background()
	objs, err := w.apply(ctx, manifests)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.remove(ctx, objs); err != nil {
			t.Errorf("remove policies: %v", err)
		}
		if err := w.settled(ctx, 10*time.Second); err != nil {
			t.Errorf("enforcers did not settle after the policies were removed: %v", err)
		}
	})
	return objs
}
