package rules

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// nodeDecoder fills a typed value from a YAML node tree by hand instead of
// through yaml.Node.Decode: that path ignores KnownFields, and its errors
// carry neither the source nor the field path. Walking the tree ourselves
// gives every error "<source>:<line>: <path>: <reason>" and remembers where
// each field was, so semantic validation can point at lines too.
type nodeDecoder struct {
	errs *errorList
	// pos holds the line of every decoded path ("spec.labels[2].key"): the
	// line of its key for fields, of the item for list entries, so an error
	// about a missing field inside "spec:" points at "spec:".
	pos map[string]int
}

func (d *nodeDecoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolveAlias(n)
	if n == nil {
		return
	}
	if _, ok := d.pos[path]; !ok {
		d.pos[path] = n.Line
	}
	if isNull(n) {
		return // an explicit null leaves the zero value, as with absent fields
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errs.add(n.Line, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, ok := parseBool(n)
		if !ok {
			d.errs.add(n.Line, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errs.add(n.Line, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), path+"["+strconv.Itoa(i)+"]")
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(n, v, path)
	default:
		// Only reachable if the Standard types grow a field kind this
		// decoder does not know; fail loudly rather than skip it.
		d.errs.add(n.Line, path, "internal error: cannot decode into %s", v.Type())
	}
}

func (d *nodeDecoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(n.Line, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		name, ok := d.mappingKey(k, seen, path)
		if !ok {
			continue
		}
		idx, known := fields[name]
		if !known {
			d.errs.add(k.Line, path, "unknown field %s (one of: %s)", strconv.Quote(name), strings.Join(fieldNames(fields), ", "))
			continue
		}
		d.pos[joinPath(path, name)] = k.Line
		d.decode(val, v.Field(idx), joinPath(path, name))
	}
	if f := v.FieldByName("Line"); f.IsValid() && f.Kind() == reflect.Int && f.CanSet() {
		f.SetInt(int64(n.Line))
	}
}

func (d *nodeDecoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(n.Line, path, "expected a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		name, ok := d.mappingKey(k, seen, path)
		if !ok {
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.pos[joinPath(path, name)] = k.Line
		d.decode(val, elem, joinPath(path, name))
		m.SetMapIndex(reflect.ValueOf(name).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
}

// mappingKey checks one key of a mapping: a plain scalar, not a merge key,
// not seen before.
func (d *nodeDecoder) mappingKey(k *yaml.Node, seen map[string]int, path string) (string, bool) {
	if k == nil || k.Kind != yaml.ScalarNode {
		line := 0
		if k != nil {
			line = k.Line
		}
		d.errs.add(line, path, "expected a string key, got %s", describe(k))
		return "", false
	}
	if k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0) {
		d.errs.add(k.Line, path, "merge keys (<<) are not supported; write the fields out")
		return "", false
	}
	if first, dup := seen[k.Value]; dup {
		d.errs.add(k.Line, path, "duplicate key %s (first at line %d)", strconv.Quote(k.Value), first)
		return "", false
	}
	seen[k.Value] = k.Line
	return k.Value, true
}

// yamlFields maps each yaml tag name of t to its field index, skipping
// fields tagged "-" (filled by Palisade, not by the document).
func yamlFields(t reflect.Type) map[string]int {
	out := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = i
	}
	return out
}

func fieldNames(fields map[string]int) []string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	// Declaration order reads like the documentation of the type.
	sort.Slice(names, func(i, j int) bool { return fields[names[i]] < fields[names[j]] })
	return names
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// resolveAlias follows an alias to its anchored node. The schema has no
// recursive types, so following aliases cannot expand without bound.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func parseBool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		return false, false
	}
	switch strings.ToLower(n.Value) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func describe(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return quoteValue(n.Value)
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return fmt.Sprintf("node kind %d", n.Kind)
}
