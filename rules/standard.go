package rules

// APIVersion and Kind identify a labeling standard document.
const (
	APIVersion = "palisade.dev/v1alpha1"
	Kind       = "LabelingStandard"
)

// Target is the kind of object a label rule applies to. Pod rules also apply
// to the pod templates of workloads (Deployment, StatefulSet, DaemonSet,
// ReplicaSet, Job, CronJob).
type Target string

const (
	TargetNamespace Target = "Namespace"
	TargetPod       Target = "Pod"
)

// Action says what a violated rule does to the request.
type Action string

const (
	// ActionDeny rejects the request.
	ActionDeny Action = "deny"
	// ActionWarn admits the request with an admission warning (kubectl prints it).
	ActionWarn Action = "warn"
	// ActionDryRun admits the request silently; only the decision record shows it.
	ActionDryRun Action = "dryrun"
)

// Standard is a parsed, validated labeling standard. Build one with Parse,
// Load or Default; the zero value is not usable.
type Standard struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	Spec       Spec     `yaml:"spec" json:"spec"`

	// Source names where the standard came from ("embedded default" or a
	// file path), for error messages and decision records.
	Source string `yaml:"-" json:"-"`
}

// Metadata names and versions a standard; the version is stamped on every
// decision record so evidence says which standard judged it.
type Metadata struct {
	Name    string `yaml:"name" json:"name"`
	Version string `yaml:"version" json:"version"`
}

// Spec is the body of the standard.
type Spec struct {
	// IdentityLabels are the pod label keys that, with the namespace, make a
	// workload's security identity. Everything else is ignored by the enforcer.
	IdentityLabels []string `yaml:"identityLabels" json:"identityLabels"`
	// ReservedPrefixes are label/annotation key prefixes only Palisade and
	// PrivilegedGroups may set.
	ReservedPrefixes []string `yaml:"reservedPrefixes" json:"reservedPrefixes"`
	// PrivilegedGroups may set reserved keys: exemptions, per-namespace rule
	// actions and the datapath enforcement mode.
	PrivilegedGroups []string `yaml:"privilegedGroups" json:"privilegedGroups"`
	// Labels are the label rules for namespaces and pods.
	Labels []LabelRule `yaml:"labels" json:"labels"`
	// Profiles maps a namespace's data classification to its baseline
	// NetworkPolicies.
	Profiles Profiles `yaml:"profiles" json:"profiles"`
	// NetworkPolicies sets the action of each built-in NetworkPolicy rule.
	NetworkPolicies []NetworkPolicyRule `yaml:"networkPolicies" json:"networkPolicies"`
}

// LabelRule constrains one label key on one target kind.
type LabelRule struct {
	// ID names the rule in denials, warnings, records and action overrides.
	ID     string `yaml:"id" json:"id"`
	Target Target `yaml:"target" json:"target"`
	Key    string `yaml:"key" json:"key"`
	// Required: the label must be present (after inheritance).
	Required bool `yaml:"required,omitempty" json:"required,omitempty"`
	// Pattern, if set, is a regular expression the whole value must match.
	Pattern string `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	// Values, if set, is the closed set of allowed values.
	Values []string `yaml:"values,omitempty" json:"values,omitempty"`
	// InheritFromNamespace (Pod rules): a pod without the label gets the
	// namespace's value of the same key by mutation.
	InheritFromNamespace bool `yaml:"inheritFromNamespace,omitempty" json:"inheritFromNamespace,omitempty"`
	// MatchNamespace (Pod rules): a pod's value must equal its namespace's.
	MatchNamespace bool `yaml:"matchNamespace,omitempty" json:"matchNamespace,omitempty"`
	// Action defaults to deny.
	Action      Action `yaml:"action,omitempty" json:"action,omitempty"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Hint says in words what a valid value looks like ("a lowercase DNS
	// label"); fixes use it instead of repeating the pattern. One line.
	Hint string `yaml:"hint,omitempty" json:"hint,omitempty"`

	// Line is where the rule starts in its source, for error messages.
	Line int `yaml:"-" json:"-"`
}

// Profiles chooses each namespace's baseline profile from its data
// classification label.
type Profiles struct {
	ClassificationLabel string `yaml:"classificationLabel" json:"classificationLabel"`
	// DefaultProfile applies when the label is missing or has no mapping.
	DefaultProfile   string             `yaml:"defaultProfile" json:"defaultProfile"`
	ByClassification map[string]string  `yaml:"byClassification" json:"byClassification"`
	Definitions      map[string]Profile `yaml:"definitions" json:"definitions"`
}

// Profile describes the baseline NetworkPolicies of a namespace. Every
// profile includes default-deny (Ingress+Egress) and DNS egress.
type Profile struct {
	// Name is filled from the definitions key.
	Name string `yaml:"-" json:"name"`
	// AllowSameNamespaceIngress adds a policy allowing ingress from every
	// pod in the same namespace.
	AllowSameNamespaceIngress bool `yaml:"allowSameNamespaceIngress" json:"allowSameNamespaceIngress"`
}

// NetworkPolicyRule sets the action of a built-in NetworkPolicy check.
type NetworkPolicyRule struct {
	ID     string `yaml:"id" json:"id"`
	Action Action `yaml:"action,omitempty" json:"action,omitempty"`
	// Classifications limits the rule to namespaces with these data
	// classifications (empty: all namespaces).
	Classifications []string `yaml:"classifications,omitempty" json:"classifications,omitempty"`
	Line            int      `yaml:"-" json:"-"`
}

// Built-in NetworkPolicy rule IDs.
const (
	RuleManagedReadonly      = "netpol-managed-readonly"
	RuleNonIdentitySelector  = "netpol-non-identity-selector"
	RuleEgressWithoutDNS     = "netpol-egress-without-dns"
	RuleOpenCIDR             = "netpol-open-cidr"
	RuleRegulatedAllNS       = "netpol-regulated-all-namespaces"
	RuleReservedKey          = "reserved-key"
	RuleInvalidActionsSyntax = "namespace-rule-actions"
	// RuleClassificationLowered guards a namespace's data classification:
	// lowering it (see Evaluator.ClassificationLowered) takes a privileged group.
	RuleClassificationLowered = "namespace-classification-lowered"
	// RuleSelectedByPolicy guards the namespace labels another namespace's
	// NetworkPolicy selects on: changing whether a namespace matches such
	// a selector takes a privileged group.
	RuleSelectedByPolicy = "namespace-selected-by-policy"
)

// ReservedPrefix is Palisade's own key prefix. Every standard reserves it:
// exemptions, rule actions and the enforcement mode live under it, so a
// standard that left it open would let any namespace user exempt
// themselves.
const ReservedPrefix = "palisade.dev/"

// Well-known keys Palisade reads and writes.
const (
	// LabelManagedBy marks the baseline NetworkPolicies Palisade owns.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "palisade"
	// AnnotationProfile records a namespace's (or managed policy's) baseline profile.
	AnnotationProfile = "palisade.dev/profile"
	// AnnotationExempt ("true") exempts a namespace; only privileged groups may set it.
	AnnotationExempt = "palisade.dev/exempt"
	// AnnotationRuleActions overrides rule actions in a namespace:
	// "pod-tier=warn,ns-owner=dryrun" or "*=warn". Privileged groups only.
	AnnotationRuleActions = "palisade.dev/rule-actions"
	// AnnotationEnforcement ("enforce" | "audit") sets the namespace's datapath mode.
	AnnotationEnforcement = "palisade.dev/enforcement"
)
