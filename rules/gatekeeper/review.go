package gatekeeper

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	apiconstraints "github.com/open-policy-agent/frameworks/constraint/pkg/apis/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/expansion"
	mutationtypes "github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/types"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/target"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/palisade-dev/palisade/rules"
)

// webhookEnforcementPoint is the enforcement point Gatekeeper's own
// admission webhook reviews at; constraints scoped to others do not apply.
const webhookEnforcementPoint = apiconstraints.WebhookEnforcementPoint

// Review judges an admission request as Gatekeeper's validating webhook
// would: the object itself, then, for each ExpansionTemplate that applies,
// the resource it generates (a workload's pod template as a Pod). ns is the
// request's namespace (ignored for Namespace requests, which Gatekeeper
// judges as cluster-scoped); nil if unknown.
//
// Each violation's RuleID is "<constraint kind>/<name>", its Action the
// constraint's enforcementAction (the ExpansionTemplate's, if it sets one),
// and its Message one line: "[<RuleID>] <object>: <Gatekeeper's message>".
func (c *CustomRules) Review(ctx context.Context, req *admissionv1.AdmissionRequest, ns *corev1.Namespace) ([]rules.Violation, error) {
	if c == nil || c.constraints == 0 {
		return nil, nil
	}
	if req == nil {
		return nil, errors.New("review custom rules: no request")
	}
	r := *req
	if r.Kind.Group == "" && r.Kind.Kind == "Namespace" {
		// As Gatekeeper's webhook: a Namespace is judged cluster-scoped
		// (server-side apply sets its namespace field).
		r.Namespace = ""
		ns = nil
	}
	opts := []reviews.ReviewOpt{reviews.EnforcementPoint(webhookEnforcementPoint)}
	if ns != nil {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ns)
		if err != nil {
			return nil, fmt.Errorf("review custom rules: convert namespace %s: %w", ns.Name, err)
		}
		opts = append(opts, reviews.Namespace(m))
	}
	obj, err := requestObject(&r)
	if err != nil {
		return nil, fmt.Errorf("review custom rules: %w", err)
	}
	object := describe(&r, obj)
	resp, err := c.client.Review(ctx, &target.AugmentedReview{
		AdmissionRequest: &r,
		Namespace:        ns,
		Source:           mutationtypes.SourceTypeOriginal,
		IsAdmission:      true,
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("review custom rules: %s: %w", object, err)
	}
	out := violations(resp, object, "")
	if c.expansions == 0 || obj == nil {
		return out, nil
	}
	resultants, err := c.expansion.Expand(&mutationtypes.Mutable{Object: obj, Namespace: ns, Username: r.UserInfo.Username})
	if err != nil {
		return nil, fmt.Errorf("review custom rules: expand %s: %w", object, err)
	}
	for _, res := range resultants {
		sub, err := c.client.Review(ctx, &target.AugmentedUnstructured{
			Object:    *res.Obj,
			Namespace: ns,
			Operation: r.Operation,
			Source:    mutationtypes.SourceTypeGenerated,
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("review custom rules: %s as expanded by %s: %w", object, res.TemplateName, err)
		}
		out = append(out, violations(sub, object+" ("+generated(res)+")", res.EnforcementAction)...)
	}
	return out, nil
}

// requestObject decodes the request's object for expansion and naming,
// with the kind and namespace of the request as Gatekeeper sets them. A
// request without an object (DELETE, CONNECT) has none.
func requestObject(r *admissionv1.AdmissionRequest) (*unstructured.Unstructured, error) {
	if len(r.Object.Raw) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := utiljson.Unmarshal(r.Object.Raw, &m); err != nil || m == nil {
		return nil, fmt.Errorf("decode %s object: not a JSON object", r.Kind.Kind)
	}
	obj := &unstructured.Unstructured{Object: m}
	obj.SetGroupVersionKind(schema.GroupVersionKind{Group: r.Kind.Group, Version: r.Kind.Version, Kind: r.Kind.Kind})
	if r.Namespace != "" {
		obj.SetNamespace(r.Namespace)
	}
	return obj, nil
}

// describe names the judged object as the native rules do:
// "pod shop/web", "namespace shop", "deployment shop/api".
func describe(r *admissionv1.AdmissionRequest, obj *unstructured.Unstructured) string {
	name := r.Name
	if name == "" && obj != nil {
		name = obj.GetName()
		if name == "" && obj.GetGenerateName() != "" {
			name = obj.GetGenerateName() + "*"
		}
	}
	if name == "" {
		name = "(unnamed)"
	}
	if r.Namespace != "" {
		name = r.Namespace + "/" + name
	}
	return strings.ToLower(r.Kind.Kind) + " " + name
}

// generated says what an expanded resource stands for in messages.
func generated(res *expansion.Resultant) string {
	if res.Obj.GetKind() == "Pod" {
		return "pod template"
	}
	return "generated " + strings.ToLower(res.Obj.GetKind())
}

// violations converts Gatekeeper's results, in its order (by constraint
// kind and name), target by target in name order.
func violations(resp *types.Responses, object, actionOverride string) []rules.Violation {
	if resp == nil {
		return nil
	}
	targets := make([]string, 0, len(resp.ByTarget))
	for t := range resp.ByTarget {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	var out []rules.Violation
	for _, t := range targets {
		for _, res := range resp.ByTarget[t].Results {
			id := "(unknown constraint)"
			if res.Constraint != nil {
				id = res.Constraint.GetKind() + "/" + res.Constraint.GetName()
			}
			out = append(out, rules.NewViolation(id, object, detailsKey(res), oneLine(res.Msg), "", action(res, actionOverride)))
		}
	}
	return out
}

// action maps an enforcement action; anything unknown denies, so that a
// typo or a newer Gatekeeper action never relaxes a rule.
func action(res *types.Result, override string) rules.Action {
	a := res.EnforcementAction
	if override != "" {
		a = override
	}
	if a == "scoped" {
		var strictest rules.Action
		for _, s := range res.ScopedEnforcementActions {
			strictest = stricter(strictest, action(&types.Result{EnforcementAction: s}, ""))
		}
		if strictest == "" {
			return rules.ActionDeny
		}
		return strictest
	}
	switch a {
	case "warn":
		return rules.ActionWarn
	case "dryrun":
		return rules.ActionDryRun
	}
	return rules.ActionDeny
}

func stricter(a, b rules.Action) rules.Action {
	rank := func(x rules.Action) int {
		switch x {
		case rules.ActionDeny:
			return 3
		case rules.ActionWarn:
			return 2
		case rules.ActionDryRun:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// detailsKey returns the label key a template reports in details.key, as
// Palisade's exported templates do.
func detailsKey(res *types.Result) string {
	details, _ := res.Metadata["details"].(map[string]any)
	key, _ := details["key"].(string)
	return key
}

// oneLine folds a message onto one line: violations are printed one per
// line, and a template's message must not forge extra lines.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
