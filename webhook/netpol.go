package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/palisade-dev/palisade/rules"
)

// netpolJudge guards the managed baseline policies and warns about user
// policies that cannot do what their authors likely mean.
type netpolJudge struct{ *decider }

func (j netpolJudge) validate(ctx context.Context, req admission.Request) (verdict, error) {
	var np, old *networkingv1.NetworkPolicy
	if req.Operation != "DELETE" {
		np = &networkingv1.NetworkPolicy{}
		if err := j.decoder.Decode(req, np); err != nil {
			return verdict{}, fmt.Errorf("decode networkpolicy: %w", err)
		}
	}
	if req.Operation == "UPDATE" || req.Operation == "DELETE" {
		old = &networkingv1.NetworkPolicy{}
		if err := j.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return verdict{}, fmt.Errorf("decode old networkpolicy: %w", err)
		}
	}
	if j.opts.isSystem(req.Namespace) {
		return verdict{note: "system namespace"}, nil
	}
	ns, err := j.namespace(ctx, req.Namespace)
	if err != nil {
		return verdict{}, err
	}
	object := "networkpolicy " + req.Namespace + "/" + req.Name
	managed := rules.IsManaged(np) || rules.IsManaged(old)
	switch {
	case managed && req.UserInfo.Username == j.opts.ServiceAccount:
		return verdict{ns: ns, note: "managed policy written by palisade"}, nil
	case managed && req.Operation == "DELETE" && (ns == nil || ns.DeletionTimestamp != nil || req.UserInfo.Username == NamespaceControllerUser):
		// A terminating namespace must be able to empty itself.
		return verdict{ns: ns, note: "namespace terminating"}, nil
	case managed:
		return verdict{ns: ns, governed: true, violations: []rules.Violation{j.managedViolation(req, object, np, old, ns)}}, nil
	case np == nil:
		return verdict{ns: ns, note: "user policy deleted"}, nil
	case !j.governed(ns):
		return verdict{ns: ns, note: "namespace not governed"}, nil
	}
	violations := j.opts.Evaluator.NetworkPolicy(np, ns)
	for _, v := range violations {
		if v.RuleID != rules.RuleEgressWithoutDNS {
			continue
		}
		// Policies add up: weigh the namespace's other policies (the
		// baseline's DNS policy among them) before warning. They are
		// listed past the cache, which holds only Palisade's own; a
		// policy without the warning costs no list.
		var list networkingv1.NetworkPolicyList
		if err := j.opts.APIReader.List(ctx, &list, client.InNamespace(req.Namespace)); err != nil {
			return verdict{}, fmt.Errorf("list networkpolicies in %s: %w", req.Namespace, err)
		}
		violations = j.opts.Evaluator.NetworkPolicyAmong(np, ns, list.Items)
		break
	}
	return verdict{ns: ns, governed: true, violations: violations}, nil
}

func (j netpolJudge) managedViolation(req admission.Request, object string, np, old *networkingv1.NetworkPolicy, ns *corev1.Namespace) rules.Violation {
	var problem, fix string
	switch {
	case req.Operation == "CREATE":
		problem = "label " + rules.LabelManagedBy + "=" + rules.ManagedByValue + " is reserved for Palisade's baseline policies"
		fix = "remove label " + rules.LabelManagedBy + " or give it another value"
	case req.Operation == "DELETE":
		problem = "baseline policy is managed by Palisade and cannot be deleted"
		fix = "add your own NetworkPolicy to allow more traffic; the baseline follows the namespace's " + j.opts.Evaluator.Standard().Spec.Profiles.ClassificationLabel + " label"
	case !rules.IsManaged(np):
		problem = "label " + rules.LabelManagedBy + " of a baseline policy cannot be changed"
		fix = "add your own NetworkPolicy to allow more traffic instead of editing the baseline"
	default:
		problem = "baseline policy is managed by Palisade and cannot be edited"
		fix = "add your own NetworkPolicy to allow more traffic instead of editing the baseline"
	}
	return rules.NewViolation(rules.RuleManagedReadonly, object, rules.LabelManagedBy, problem, fix, j.opts.Evaluator.ActionFor(rules.RuleManagedReadonly, ns))
}
