package check

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// maxExpectBytes bounds an expectation file; a bound keeps a stray huge
// file from exhausting memory.
const maxExpectBytes = 64 << 20

// Expectation is one line of a reachability file: a probe and whether it
// must be allowed.
type Expectation struct {
	Probe
	Allowed bool
}

// ReadExpectations reads a reachability file (YAML or JSON, the shape of
// `-o json`; "reason" optional) and resolves its pods in c.
func ReadExpectations(c *Cluster, path string) ([]Expectation, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read expectations: %w", err)
	}
	if info.Size() > maxExpectBytes {
		return nil, fmt.Errorf("read expectations: %s: larger than %d bytes", path, maxExpectBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read expectations: %w", err)
	}
	return ParseExpectations(c, path, data)
}

// ParseExpectations reads a reachability document; name labels errors.
// Unknown fields, unknown pods, bad ports and one probe expected both ways
// are errors naming the entry.
func ParseExpectations(c *Cluster, name string, data []byte) ([]Expectation, error) {
	var file Reachability
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		return nil, fmt.Errorf("read expectations: %s: %w", name, err)
	}
	out := make([]Expectation, 0, len(file.Results))
	seen := map[Probe]int{}
	for i, r := range file.Results {
		where := fmt.Sprintf("%s: results[%d]", name, i)
		from, err := c.Pod(r.From)
		if err != nil {
			return nil, fmt.Errorf("read expectations: %s: from: %w", where, err)
		}
		to, err := c.Pod(r.To)
		if err != nil {
			return nil, fmt.Errorf("read expectations: %s: to: %w", where, err)
		}
		if from == to {
			return nil, fmt.Errorf("read expectations: %s: from and to are both %s: a pod's traffic to itself is not probed", where, from)
		}
		if r.Port < 1 || r.Port > 65535 {
			return nil, fmt.Errorf("read expectations: %s: port %d: want 1-65535", where, r.Port)
		}
		port := Port{Number: uint16(r.Port), Protocol: policy.ProtocolTCP}
		if r.Protocol != "" {
			if port.Protocol, err = ParseProtocol(r.Protocol); err != nil {
				return nil, fmt.Errorf("read expectations: %s: %w", where, err)
			}
		}
		e := Expectation{Probe: Probe{From: from, To: to, Port: port}, Allowed: r.Allowed}
		if j, dup := seen[e.Probe]; dup {
			if out[j].Allowed != e.Allowed {
				return nil, fmt.Errorf("read expectations: %s: %s expected both allowed and denied (also results[%d])", where, e.Probe, j)
			}
			continue
		}
		seen[e.Probe] = len(out)
		out = append(out, e)
	}
	return out, nil
}

// Mismatch is an expectation the engine's result contradicts.
type Mismatch struct {
	Expectation
	Got Result
}

// String reads "x/a -> y/b 80/TCP: expected allowed, got denied (reason)".
func (m Mismatch) String() string {
	return fmt.Sprintf("%s: expected %s, got %s (%s)", m.Probe, allowedWord(m.Allowed), allowedWord(m.Got.Allowed()), m.Got.Reason())
}

func allowedWord(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

// Compare returns every expectation whose probe's result differs, in the
// expectations' order. An expectation without a result is an error: the
// probe was never run.
func Compare(want []Expectation, got []Result) ([]Mismatch, error) {
	byProbe := make(map[Probe]Result, len(got))
	for _, r := range got {
		byProbe[r.Probe] = r
	}
	var out []Mismatch
	for _, e := range want {
		r, ok := byProbe[e.Probe]
		if !ok {
			return nil, fmt.Errorf("compare expectations: %s was not probed", e.Probe)
		}
		if r.Allowed() != e.Allowed {
			out = append(out, Mismatch{Expectation: e, Got: r})
		}
	}
	return out, nil
}

// WithExpectations returns probes followed by every expected probe not
// among them, so that one run both prints and asserts.
func WithExpectations(probes []Probe, want []Expectation) []Probe {
	seen := make(map[Probe]bool, len(probes))
	for _, p := range probes {
		seen[p] = true
	}
	out := probes
	for _, e := range want {
		if !seen[e.Probe] {
			seen[e.Probe] = true
			out = append(out, e.Probe)
		}
	}
	return out
}
