package check

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/palisade-dev/palisade/enforcer/policy"
)

// WriteExplanation writes, for one result, the verdict and everything
// responsible for it: both sides' identities, and per direction whether
// it is isolated, by which policies, and which policy rule (and datapath
// entry) allowed it.
func WriteExplanation(w io.Writer, st *policy.State, r Result) error {
	v := r.Verdict
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", r.Probe, allowedWord(r.Allowed()))
	fmt.Fprintf(&b, "  packet:   %s -> %s %s port %d\n", r.Src, r.Dst, r.Port.Protocol, r.Port.Number)
	fmt.Fprintf(&b, "  from:     %s, %s\n", r.From, describeIdentity(st, v.SrcIdentity))
	fmt.Fprintf(&b, "  to:       %s, %s\n", r.To, describeIdentity(st, v.DstIdentity))
	fmt.Fprintf(&b, "  egress:   %s\n", describeJudgement(policy.Egress, v.Egress, v.DstIdentity, r.Port))
	fmt.Fprintf(&b, "  ingress:  %s\n", describeJudgement(policy.Ingress, v.Ingress, v.SrcIdentity, r.Port))
	fmt.Fprintf(&b, "  verdict:  %s\n", v.Reason())
	if v.Passes != v.Allowed {
		b.WriteString("  note:     audit mode: the denial is reported and the packet passes\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write explanation: %w", err)
	}
	return nil
}

func describeIdentity(st *policy.State, id policy.NumericIdentity) string {
	ident, ok := st.Identity(id)
	if !ok {
		return fmt.Sprintf("identity %d (unknown)", id)
	}
	if ident.Kind != policy.KindWorkload {
		return fmt.Sprintf("identity %d (%s %s)", id, ident.Kind, ident.Key)
	}
	parts := []string{"namespace " + ident.Namespace}
	if len(ident.Labels) > 0 {
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(ident.Labels)) {
			labels = append(labels, k+"="+ident.Labels[k])
		}
		parts = append(parts, "labels "+strings.Join(labels, ","))
	}
	return fmt.Sprintf("identity %d (%s)", id, strings.Join(parts, "; "))
}

func describeJudgement(dir policy.Direction, j policy.Judgement, peer policy.NumericIdentity, port Port) string {
	where := fmt.Sprintf("at %s: ", j.Pod)
	isolated := func() string {
		names := make([]string, len(j.IsolatedBy))
		for i, p := range j.IsolatedBy {
			names[i] = p.String()
		}
		return "isolated by " + strings.Join(names, ", ")
	}
	switch j.Cause {
	case policy.CauseNotLocal:
		return "not judged: the pod is not enforced here"
	case policy.CauseLoopback:
		return where + "allowed: loopback, never leaves the pod"
	case policy.CauseNotIsolated:
		return where + fmt.Sprintf("allowed: not isolated (no policy selects %s for %s)", j.Pod, dir)
	case policy.CauseHost:
		return where + "allowed: " + isolated() + "; traffic from the node is always allowed"
	case policy.CausePolicyAllow:
		s := where + "allowed: " + isolated() + "; allowed by " + j.Source.String()
		if j.Rule != (policy.RuleKey{}) {
			s += fmt.Sprintf(" [entry %s]", j.Rule)
		}
		return s
	case policy.CausePolicyMiss:
		s := where + fmt.Sprintf("denied: %s; no rule allows identity %d on %s", isolated(), peer, port)
		if j.Audit {
			s += " (audit mode: reported, passes)"
		}
		return s
	}
	return where + j.Cause.String()
}
