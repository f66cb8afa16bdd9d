package rules

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultSource is the Source of the standard Default returns.
const DefaultSource = "embedded default"

// Parse decodes and validates a standard. source names the origin (a file
// path) and starts every error message; errors carry the line number, as
// "<source>:<line>: <path>: <reason>", one line per problem.
func Parse(data []byte, source string) (*Standard, error) {
	errs := &errorList{source: source}
	root := parseDocument(data, errs)
	if root == nil {
		return nil, errs.err()
	}
	std := &Standard{}
	d := nodeDecoder{errs: errs, pos: make(map[string]int, 128)}
	d.decode(root, reflect.ValueOf(std).Elem(), "")
	if len(errs.items) > 0 {
		// Semantic checks on a half-decoded document would only add echoes
		// of the structural errors ("missing target" after "unknown field
		// tagret"), so stop here.
		return nil, errs.err()
	}
	std.Source = source
	std.Spec.Profiles.fillNames()
	validate(std, errs, func(path string) int { return lineOf(d.pos, path) })
	if err := errs.err(); err != nil {
		return nil, err
	}
	return std, nil
}

// Load reads and parses a standard file.
func Load(path string) (*Standard, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load standard: %w", err)
	}
	return Parse(data, path)
}

// Default returns the embedded default standard (a fresh copy each call).
// It panics only if the embedded file is invalid, which the package's tests
// rule out.
func Default() *Standard {
	std, err := Parse(defaultYAML, DefaultSource)
	if err != nil {
		panic(fmt.Sprintf("rules: embedded default standard is invalid: %v", err))
	}
	return std
}

// DefaultYAML returns the embedded default standard's text, for
// `palisade rules show` and as a starting point for custom standards.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

func (p *Profiles) fillNames() {
	for name, def := range p.Definitions {
		def.Name = name
		p.Definitions[name] = def
	}
}

// parseDocument returns the top-level mapping of the single YAML document
// in data, or nil after recording why there is none.
func parseDocument(data []byte, errs *errorList) (root *yaml.Node) {
	defer func() {
		// The YAML library reports errors by panicking internally; should
		// one escape, a malformed standard must still be an error, not a
		// crashed webhook.
		if r := recover(); r != nil {
			errs.add(0, "", "invalid YAML: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			errs.add(0, "", "empty document; expected a %s", Kind)
		} else {
			addYAMLError(errs, err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		errs.add(extra.Line, "", "a second YAML document; a standard is exactly one document")
		return nil
	case !errors.Is(err, io.EOF):
		addYAMLError(errs, err)
		return nil
	}
	root = &doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			errs.add(doc.Line, "", "empty document; expected a %s", Kind)
			return nil
		}
		root = doc.Content[0]
	}
	root = resolveAlias(root)
	if root == nil || isNull(root) {
		errs.add(doc.Line, "", "empty document; expected a %s", Kind)
		return nil
	}
	if root.Kind != yaml.MappingNode {
		errs.add(root.Line, "", "expected a mapping at the top of the document, got %s", describe(root))
		return nil
	}
	return root
}

var yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// addYAMLError turns the library's "yaml: line N: reason" into our format.
func addYAMLError(errs *errorList, err error) {
	msg := err.Error()
	if m := yamlLineError.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		errs.add(line, "", "invalid YAML: %s", m[2])
		return
	}
	if len(msg) > 6 && msg[:6] == "yaml: " {
		msg = msg[6:]
	}
	errs.add(0, "", "invalid YAML: %s", msg)
}

// lineOf finds the line of path, or of its nearest decoded ancestor when
// the field itself is absent.
func lineOf(pos map[string]int, path string) int {
	for {
		if line, ok := pos[path]; ok {
			return line
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		}
	}
	return ""
}
