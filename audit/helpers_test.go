package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var testEpoch = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// sampleRecord returns a varied, realistic record; i makes it unique.
func sampleRecord(i int) DecisionRecord {
	rec := DecisionRecord{
		Time:       testEpoch.Add(time.Duration(i) * time.Second),
		RequestUID: fmt.Sprintf("uid-%04d", i),
		Webhook:    "validate",
		User:       "system:serviceaccount:ci:deployer",
		Groups:     []string{"system:serviceaccounts", "system:authenticated"},
		Operation:  "CREATE",
		Kind:       "apps/v1/Deployment",
		Namespace:  fmt.Sprintf("team-%d", i%3),
		Name:       fmt.Sprintf("web-%d", i),
		Decision:   DecisionAllowed,
		Standard:   "palisade-default@v1",
	}
	switch i % 4 {
	case 1:
		rec.Decision = DecisionDenied
		rec.Rules = []RuleResult{{RuleID: "require-env", Action: "enforce", Message: `label "env" is required <prod|staging>`}}
		rec.Message = "denied by 1 rule"
	case 2:
		rec.Decision = DecisionMutated
		rec.Patch = []string{"add /metadata/labels/env=prod"}
	case 3:
		rec.Decision = DecisionWarned
		rec.Rules = []RuleResult{{RuleID: "team-owner", Action: "warn", Message: "no owner"}}
	}
	return rec
}

// writeChain records n sample records into a new file and returns its path.
func writeChain(t testing.TB, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	rec, err := NewRecorder(RecorderOptions{File: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := rec.Record(context.Background(), sampleRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// chainLines returns the lines of a record file, each with its "\n".
func chainLines(t testing.TB, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(data, []byte("\n"))[:bytes.Count(data, []byte("\n"))]
}
