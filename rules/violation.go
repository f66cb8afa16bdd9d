package rules

import (
	"strconv"
	"strings"
)

// Violation is one broken rule, ready to print.
type Violation struct {
	RuleID string `json:"ruleID"`
	// Object describes what was judged: `pod shop/web`,
	// `deployment shop/api (pod template)`, `namespace shop`.
	Object string `json:"object"`
	// Key is the offending label (or annotation) key, if any. For
	// NetworkPolicy checks that are not about a label it is the field path,
	// e.g. `spec.egress[0].to[1].ipBlock.cidr`.
	Key string `json:"key,omitempty"`
	// Message is the whole one-line text shown to the user, naming the rule
	// ID, the object, the key and the fix, e.g.
	// `[pod-tier] pod shop/web: missing label tier: add label tier (one of: frontend, backend, data)`.
	Message string `json:"message"`
	// Fix is the remedy alone, e.g. `add label tier (one of: frontend, backend, data)`.
	Fix string `json:"fix,omitempty"`
	// Action is the effective action after per-namespace overrides.
	Action Action `json:"action"`
}

func (v Violation) String() string { return v.Message }

func newViolation(ruleID, object, key, problem, fix string, action Action) Violation {
	msg := "[" + ruleID + "] " + object + ": " + problem
	if fix != "" {
		msg += ": " + fix
	}
	return Violation{RuleID: ruleID, Object: object, Key: key, Message: msg, Fix: fix, Action: action}
}

// maxShownValue bounds how much of a user-supplied value a message repeats:
// annotations may be hundreds of kilobytes, a message is one line.
const maxShownValue = 80

// quoteValue renders a user-supplied value for a one-line message.
func quoteValue(s string) string {
	if len(s) > maxShownValue {
		cut := maxShownValue
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// showKey renders a label key as is when it is made of the characters a
// valid key may hold, and quoted otherwise: admission sees objects before
// the API server validates them, so a key may hold anything, including
// line breaks that would forge extra message lines.
func showKey(k string) string {
	if k == "" || len(k) > 317 {
		return quoteValue(k)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '/') {
			return quoteValue(k)
		}
	}
	return k
}

// showValue renders a user-supplied value or object name as is when it is
// made of the characters a label value or object name may hold, and quoted
// otherwise, like showKey: fixes read "set env to prod", yet a value holding
// a line break must not forge a second message line.
func showValue(s string) string {
	if s == "" || len(s) > 253 {
		return quoteValue(s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return quoteValue(s)
		}
	}
	return s
}

// hasLineBreak reports whether s would break a one-line message.
func hasLineBreak(s string) bool {
	return strings.ContainsAny(s, "\r\n\u0085\u2028\u2029")
}

// joinOr renders [a b c] as "a, b or c".
func joinOr(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// NewViolation builds a Violation whose Message has the standard shape
// "[ruleID] object: problem: fix", for checks made outside this package
// (the webhook's guard of managed policies, custom rules).
func NewViolation(ruleID, object, key, problem, fix string, action Action) Violation {
	return newViolation(ruleID, object, key, problem, fix, action)
}
