package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/audit"
)

func writeRecords(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	r, err := audit.NewRecorder(audit.RecorderOptions{File: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		d := audit.DecisionAllowed
		if i%2 == 1 {
			d = audit.DecisionDenied
		}
		rec := audit.DecisionRecord{Time: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC), RequestUID: "u", Webhook: "validate-pods", User: "alice",
			Operation: "CREATE", Kind: "v1/Pod", Namespace: "shop", Name: "p", Decision: d}
		if d == audit.DecisionDenied {
			rec.Rules = []audit.RuleResult{{RuleID: "pod-tier", Action: "deny", Message: "[pod-tier] pod shop/p: missing label tier"}}
		}
		if err := r.Record(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuditVerify(t *testing.T) {
	good := writeRecords(t, 4)
	data, _ := os.ReadFile(good)
	lines := strings.SplitAfter(string(data), "\n")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	edited := write("edited", strings.Join(lines[:2], "")+strings.Replace(lines[2], `"allowed"`, `"denied"`, 1)+strings.Join(lines[3:], ""))
	removed := write("removed", lines[0]+strings.Join(lines[2:], ""))
	swapped := write("swapped", lines[0]+lines[2]+lines[1]+strings.Join(lines[3:], ""))
	for _, tc := range []struct {
		name, file string
		code       int
		out, err   string
	}{
		{"intact", good, 0, "4 records, chain intact", ""},
		{"edited", edited, 1, "", "line 3: "},
		{"removed", removed, 1, "", "line 2: "},
		{"reordered", swapped, 1, "", "line 2: "},
		{"missing file", filepath.Join(dir, "nope"), 2, "", "open decision records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			root := newRootCommand()
			root.SetOut(&out)
			code := execute(context.Background(), root, []string{"audit", "verify", tc.file}, &errOut)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.err) {
				t.Errorf("exit %d stdout %q stderr %q; want exit %d, stdout ~%q, stderr ~%q", code, out.String(), errOut.String(), tc.code, tc.out, tc.err)
			}
		})
	}
}

func TestAuditShow(t *testing.T) {
	path := writeRecords(t, 4)
	var out, errOut bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	if code := execute(context.Background(), root, []string{"audit", "show", path}, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"records           4", "decision allowed  2", "decision denied   2", "rule pod-tier     2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
