// Package gatekeeper connects Palisade's labeling standard to OPA
// Gatekeeper, in process, for the two jobs the native evaluator does not do:
//
//   - custom rules: an organisation's own ConstraintTemplates (Rego or CEL),
//     constraints and ExpansionTemplates, loaded from a directory and
//     reviewed by Gatekeeper's own framework inside the webhook, so a rule
//     written for Gatekeeper needs no rewrite for Palisade;
//   - export: the standard as Gatekeeper objects, for clusters that already
//     run Gatekeeper, and as the second implementation against which the
//     native evaluator is tested object by object.
//
// The standard itself is never judged here on the admission path: the
// framework costs 0.15–0.3 ms per constraint, the native evaluator a few
// microseconds for the whole standard.
package gatekeeper
