package check

import (
	"errors"
	"fmt"

	"github.com/palisade-dev/palisade/bpf"
	"github.com/palisade-dev/palisade/enforcer/datapath"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// bpfEntries are the map entries the enforcer would write for a State
// (datapath.Translate, the enforcer's own translation), with each pod
// given a stand-in interface index: BPF_PROG_TEST_RUN has only loopback,
// so a pod's endpoint entry is copied to ifindex 1 before its probes run.
type bpfEntries struct {
	datapath.Entries
	ifindex map[policy.PodRef]uint32
	// rulesByID finds the entries of a rule id the program reported.
	rulesByID map[uint32][]policy.RuleKey
}

func translate(st *policy.State) (*bpfEntries, error) {
	e := &bpfEntries{ifindex: make(map[policy.PodRef]uint32, len(st.Endpoints)), rulesByID: map[uint32][]policy.RuleKey{}}
	for i, ep := range st.Endpoints {
		e.ifindex[ep.Pod] = uint32(i + 1)
	}
	entries, err := datapath.Translate(st, func(ep policy.LocalEndpoint) (int, error) {
		return int(e.ifindex[ep.Pod]), nil
	})
	if err != nil {
		return nil, fmt.Errorf("translate state: %w", err)
	}
	var unresolved []error
	for _, err := range entries.Unresolved {
		unresolved = append(unresolved, err)
	}
	if len(unresolved) > 0 {
		return nil, fmt.Errorf("translate state: %w", errors.Join(unresolved...))
	}
	e.Entries = entries
	for _, r := range st.Rules {
		e.rulesByID[r.RuleID()] = append(e.rulesByID[r.RuleID()], r.RuleKey)
	}
	return e, nil
}

// endpoint returns the entry to write at the probe interface for pod.
// Audit mode is left out on purpose: it only lets a denied packet pass,
// which would hide the verdict the checker reads off the program's return
// code; Judgement.Audit still reports it. The revision is the compiler's
// (Translate leaves it to the enforcer's node-wide counter).
func (e *bpfEntries) endpoint(st *policy.State, pod policy.PodRef) (bpf.PalisadeEndpointValue, bool) {
	v, ok := e.Endpoints[e.ifindex[pod]]
	if !ok {
		return v, false
	}
	v.Flags &^= uint32(bpf.PalisadeEndpointFlagsENDPOINT_F_AUDIT)
	if ep, ok := st.Endpoint(pod); ok {
		v.Revision = ep.Revision
	}
	return v, true
}
