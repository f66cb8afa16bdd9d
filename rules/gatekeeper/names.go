package gatekeeper

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// constraintName turns a rule ID into a constraint name. Rule IDs may hold
// upper case and '_', constraint names are DNS subdomains; a changed ID
// gets a short hash of the original so that "Pod_App" and "pod-app" stay
// distinct.
func constraintName(ruleID string) string {
	name := strings.ReplaceAll(lower(ruleID), "_", "-")
	if name == ruleID {
		return name
	}
	sum := sha256.Sum256([]byte(ruleID))
	return name + "-" + hex.EncodeToString(sum[:4])
}

func lower(s string) string { return strings.ToLower(s) }
