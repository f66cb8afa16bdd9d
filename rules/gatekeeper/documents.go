package gatekeeper

import (
	"bytes"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// document is one YAML document of a rules file, remembered by where it
// is so errors can send the author to it.
type document struct {
	file string
	// index counts the non-empty documents of the file from 1.
	index int
	// line is the file line the document starts on.
	line int
	data []byte
	obj  *unstructured.Unstructured
}

func (d *document) where() string {
	if d.line == 0 {
		return fmt.Sprintf("%s: object %d", d.file, d.index)
	}
	return fmt.Sprintf("%s: document %d (line %d)", d.file, d.index, d.line)
}

// errorf renders an error about d, naming the object when it has one.
func (d *document) errorf(format string, args ...any) error {
	what := ""
	if d.obj != nil {
		what = d.obj.GetKind()
		if n := d.obj.GetName(); n != "" {
			what += " " + n
		}
		what += ": "
	}
	return fmt.Errorf("%s: %s%s", d.where(), what, fmt.Sprintf(format, args...))
}

// splitDocuments cuts a YAML stream at its "---" lines. Documents holding
// only comments and blanks are dropped, so that the index an error names
// is the one a reader counts.
func splitDocuments(file string, data []byte) []*document {
	var docs []*document
	var cur bytes.Buffer
	start, line := 1, 0
	flush := func(next int) {
		if hasContent(cur.Bytes()) {
			docs = append(docs, &document{file: file, index: len(docs) + 1, line: start, data: bytes.Clone(cur.Bytes())})
		}
		cur.Reset()
		start = next
	}
	for _, l := range bytes.SplitAfter(data, []byte("\n")) {
		line++
		trimmed := strings.TrimRight(string(l), "\r\n")
		if trimmed == "---" || strings.HasPrefix(trimmed, "--- ") || strings.HasPrefix(trimmed, "---\t") {
			flush(line + 1)
			continue
		}
		if cur.Len() == 0 && !hasContent(l) {
			start = line + 1
			continue
		}
		cur.Write(l)
	}
	flush(line + 1)
	return docs
}

func hasContent(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return true
		}
	}
	return false
}

// decode parses the document into an object with apiVersion and kind.
// Duplicate keys are errors: of two values, the author meant one.
func (d *document) decode() error {
	js, err := yaml.YAMLToJSONStrict(d.data)
	if err != nil {
		return d.errorf("invalid YAML: %v", err)
	}
	var m map[string]any
	// utiljson keeps integers int64, as the Kubernetes converters expect.
	if err := utiljson.Unmarshal(js, &m); err != nil || m == nil {
		return d.errorf("expected a Kubernetes object (a mapping with apiVersion and kind)")
	}
	d.obj = &unstructured.Unstructured{Object: m}
	switch {
	case d.obj.GetAPIVersion() == "":
		return d.errorf("missing apiVersion")
	case d.obj.GetKind() == "":
		return d.errorf("missing kind")
	}
	return nil
}
