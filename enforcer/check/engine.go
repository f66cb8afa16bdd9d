package check

import (
	"fmt"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// Engine judges probes against one compiled State.
type Engine interface {
	// Judge returns one Result per probe, in order.
	Judge(probes []Probe) ([]Result, error)
	// Close releases what the engine holds (kernel objects for BPF).
	Close() error
}

// EngineName selects an engine on the command line.
type EngineName string

const (
	// EngineModel judges with policy.Decide, in Go.
	EngineModel EngineName = "model"
	// EngineBPF judges with the real datapath programs in the kernel.
	EngineBPF EngineName = "bpf"
)

// NewEngine returns the named engine loaded with st.
func NewEngine(name EngineName, st *policy.State) (Engine, error) {
	switch name {
	case EngineModel:
		return NewModelEngine(st), nil
	case EngineBPF:
		return NewBPFEngine(st)
	}
	return nil, fmt.Errorf("engine %q: want %s or %s", name, EngineModel, EngineBPF)
}

// ModelEngine judges probes with policy.Decide.
type ModelEngine struct {
	state *policy.State
}

// NewModelEngine returns a ModelEngine for st.
func NewModelEngine(st *policy.State) *ModelEngine { return &ModelEngine{state: st} }

// Judge implements Engine.
func (m *ModelEngine) Judge(probes []Probe) ([]Result, error) {
	out := make([]Result, len(probes))
	for i, p := range probes {
		src, dst, err := addresses(m.state, p)
		if err != nil {
			return nil, fmt.Errorf("judge with model: %w", err)
		}
		v := policy.Decide(m.state, policy.Endpoint{IP: src}, policy.Endpoint{IP: dst}, p.Port.Protocol, p.Port.Number)
		out[i] = Result{Probe: p, Src: src, Dst: dst, Verdict: v}
	}
	return out, nil
}

// Close implements Engine; the model holds nothing.
func (m *ModelEngine) Close() error { return nil }
