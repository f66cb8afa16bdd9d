package webhook

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/palisade-dev/palisade/audit"
	"github.com/palisade-dev/palisade/rules"
)

// verdict is what one kind's handler concluded about a request.
type verdict struct {
	violations []rules.Violation
	patches    []jsonpatch.JsonPatchOperation
	// ns is the request's namespace (the object itself for Namespaces),
	// when known: events go there, custom rules see it.
	ns *corev1.Namespace
	// governed: the standard applies; custom rules are consulted.
	governed bool
	// note explains an allow that judged nothing (system namespace,
	// exempt, unchanged labels...).
	note string
}

// judgeFunc is one kind's private judgement; an error means the webhook
// cannot decide and the API server's failurePolicy applies.
type judgeFunc func(ctx context.Context, req admission.Request) (verdict, error)

// decider turns verdicts into admission responses, decision records,
// metrics and events: every path answers the same way.
type decider struct {
	opts    *Options
	decoder admission.Decoder
	// standard names the judging standard on every record.
	standard string
}

func newDecider(opts *Options, decoder admission.Decoder) *decider {
	std := opts.Evaluator.Standard()
	return &decider{opts: opts, decoder: decoder, standard: std.Metadata.Name + "@" + std.Metadata.Version}
}

// handler wraps judge as an admission.Handler named webhook in records.
func (d *decider) handler(webhook string, validating bool, judge judgeFunc) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		return d.decide(ctx, webhook, validating, req, judge)
	})
}

func (d *decider) decide(ctx context.Context, webhook string, validating bool, req admission.Request, judge judgeFunc) admission.Response {
	start := time.Now()
	var v verdict
	var err error
	if governedKinds[webhook][req.Kind.Group+"/"+req.Kind.Kind] {
		v, err = judge(ctx, req)
	} else {
		// A misrouted request (a configuration edited by hand): judging a
		// Service as a Pod would be nonsense, and blocking it would break
		// whatever sent it.
		d.opts.Log.Info("kind not governed on this path", "path", webhook, "kind", req.Kind.String(), "uid", req.UID)
		v = verdict{note: "kind " + req.Kind.Group + "/" + req.Kind.Kind + " not governed by " + webhook}
	}
	if err == nil && validating && v.governed && d.opts.CustomRules != nil {
		var custom []rules.Violation
		custom, err = d.opts.CustomRules.Review(ctx, &req.AdmissionRequest, v.ns)
		if err != nil {
			err = fmt.Errorf("review custom rules: %w", err)
		}
		v.violations = append(v.violations, custom...)
	}
	rec := d.record(webhook, req)
	var resp admission.Response
	if err != nil {
		rec.Decision = audit.DecisionError
		rec.Message = err.Error()
		resp = admission.Errored(http.StatusInternalServerError, err)
	} else {
		resp = d.respond(&rec, v)
	}
	if req.SubResource != "" {
		// The record's kind is the object's; what was written to is part
		// of the evidence (a label edit through pods/status).
		rec.Message = strings.TrimSuffix("subresource "+req.SubResource+"; "+rec.Message, "; ")
	}
	if recErr := d.opts.Recorder.Record(ctx, rec); recErr != nil {
		// A decision that leaves no evidence is not made: the API
		// server's failurePolicy decides instead.
		d.opts.Log.Error(recErr, "record decision", "uid", req.UID)
		resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("record decision: %w", recErr))
		rec.Decision = audit.DecisionError
	}
	d.observe(webhook, req, rec, time.Since(start))
	if rec.Decision == audit.DecisionDenied {
		d.event(req, rec)
	}
	return resp
}

// governedKinds lists, per path, the group/kind each judge understands.
var governedKinds = map[string]map[string]bool{
	"mutate-namespaces":        {"/Namespace": true},
	"validate-namespaces":      {"/Namespace": true},
	"mutate-pods":              {"/Pod": true},
	"validate-pods":            {"/Pod": true},
	"validate-workloads":       {"apps/Deployment": true, "apps/StatefulSet": true, "apps/DaemonSet": true, "apps/ReplicaSet": true, "batch/Job": true, "batch/CronJob": true},
	"validate-networkpolicies": {"networking.k8s.io/NetworkPolicy": true},
}

// respond applies the effective actions: any deny rejects, warn adds an
// admission warning, dryrun only shows in the record.
func (d *decider) respond(rec *audit.DecisionRecord, v verdict) admission.Response {
	var denied, warned []string
	dryrun := false
	for _, vi := range v.violations {
		rec.Rules = append(rec.Rules, audit.RuleResult{RuleID: vi.RuleID, Action: string(vi.Action), Message: vi.Message})
		switch vi.Action {
		case rules.ActionWarn:
			warned = append(warned, vi.Message)
		case rules.ActionDryRun:
			dryrun = true
		default:
			// Anything but warn and dryrun denies: an unknown action
			// must not relax a rule.
			denied = append(denied, vi.Message)
		}
	}
	for _, p := range v.patches {
		rec.Patch = append(rec.Patch, summarizePatch(p))
	}
	rec.Message = v.note
	var resp admission.Response
	switch {
	case len(denied) > 0:
		rec.Decision = audit.DecisionDenied
		resp = admission.Denied(strings.Join(denied, "\n"))
	case len(v.patches) > 0:
		resp = admission.Patched("", v.patches...)
		rec.Decision = audit.DecisionMutated
	default:
		resp = admission.Allowed(v.note)
		rec.Decision = audit.DecisionAllowed
	}
	if rec.Decision != audit.DecisionDenied {
		switch {
		case len(warned) > 0:
			rec.Decision = audit.DecisionWarned
		case dryrun:
			rec.Decision = audit.DecisionDryRun
		}
	}
	if len(warned) > 0 {
		resp = resp.WithWarnings(warned...)
	}
	return resp
}

func (d *decider) record(webhook string, req admission.Request) audit.DecisionRecord {
	k := req.Kind
	kind := k.Version + "/" + k.Kind
	if k.Group != "" {
		kind = k.Group + "/" + kind
	}
	return audit.DecisionRecord{
		Time:       time.Now().UTC(),
		RequestUID: string(req.UID),
		Webhook:    webhook,
		User:       req.UserInfo.Username,
		Groups:     req.UserInfo.Groups,
		Operation:  string(req.Operation),
		Kind:       kind,
		Namespace:  req.Namespace,
		Name:       req.Name,
		DryRun:     req.DryRun != nil && *req.DryRun,
		Standard:   d.standard,
	}
}

func (d *decider) observe(webhook string, req admission.Request, rec audit.DecisionRecord, took time.Duration) {
	m := d.opts.Metrics
	if m == nil {
		return
	}
	m.requests.WithLabelValues(req.Kind.Kind, string(req.Operation), string(rec.Decision)).Inc()
	m.duration.WithLabelValues(webhook).Observe(took.Seconds())
	for _, r := range rec.Rules {
		m.violations.WithLabelValues(r.RuleID, r.Action).Inc()
	}
}

// event leaves a Warning in the request's namespace, regarding the denied
// object, so that the namespace's owners see denials with kubectl get
// events, not only the requester. A Namespace whose creation was denied
// does not exist, and the API server refuses an event in it: that event
// goes to Palisade's own namespace (the release namespace), still naming
// the namespace (regarding Kind Namespace, its name, and the note).
func (d *decider) event(req admission.Request, rec audit.DecisionRecord) {
	if d.opts.Events == nil {
		return
	}
	var lines []string
	for _, r := range rec.Rules {
		if r.Action == string(rules.ActionDeny) {
			lines = append(lines, r.Message)
		}
	}
	note := fmt.Sprintf("denied %s by %s: %s", strings.ToLower(string(req.Operation)), req.UserInfo.Username, strings.Join(lines, "; "))
	// The Events API caps a note at 1 KiB.
	if len(note) > 1000 {
		note = note[:1000] + "..."
	}
	name := req.Name
	if name == "" {
		name = "(generated)"
	}
	namespace := req.Namespace
	if req.Kind.Group == "" && req.Kind.Kind == "Namespace" && req.Operation == "CREATE" {
		// The events API requires regarding's namespace to be the
		// event's own.
		namespace = d.opts.Namespace
	}
	regarding := &corev1.ObjectReference{
		APIVersion: schema.GroupVersion{Group: req.Kind.Group, Version: req.Kind.Version}.String(),
		Kind:       req.Kind.Kind,
		Namespace:  namespace,
		Name:       name,
	}
	d.opts.Events.Eventf(regarding, nil, corev1.EventTypeWarning, "AdmissionDenied", string(req.Operation), "%s", note)
}

// summarizePatch renders one patch operation for a decision record, e.g.
// "add /metadata/labels/env=prod".
func summarizePatch(p jsonpatch.JsonPatchOperation) string {
	s := p.Operation + " " + p.Path
	switch val := p.Value.(type) {
	case nil:
	case string:
		s += "=" + val
	case map[string]any:
		keys := make([]string, 0, len(val))
		for k := range val {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s=%v", k, val[k])
		}
		s += "={" + strings.Join(parts, ",") + "}"
	default:
		s += fmt.Sprintf("=%v", val)
	}
	return s
}
