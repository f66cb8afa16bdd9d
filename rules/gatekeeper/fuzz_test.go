package gatekeeper

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary rules files to the loader: whatever the bytes,
// the result is rules or an error naming the file, never a panic.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{regoRules, celRules, expansionRules, "---\n---\n", "a: [", "- 1\n", "apiVersion: v1\nkind: Pod\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs := splitDocuments("f.yaml", data)
		for i, d := range docs {
			if d.index != i+1 || d.line < 1 || !hasContent(d.data) || !bytes.Contains(data, bytes.TrimSpace(d.data)) {
				t.Fatalf("document %d: index %d line %d %q", i, d.index, d.line, d.data)
			}
		}
		_, err := load(context.Background(), docs)
		if err != nil && !strings.Contains(err.Error(), "f.yaml: ") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}
