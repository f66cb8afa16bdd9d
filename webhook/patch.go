package webhook

import (
	"sort"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// setEntries returns patch operations that set entries in the string map
// at path (e.g. "/metadata/labels"), whose current value is current.
// Writing the operations directly, rather than diffing a re-encoded
// object, leaves every other field byte for byte as the user sent it.
func setEntries(path string, current, entries map[string]string) []jsonpatch.JsonPatchOperation {
	if len(entries) == 0 {
		return nil
	}
	if current == nil {
		value := make(map[string]any, len(entries))
		for k, v := range entries {
			value[k] = v
		}
		return []jsonpatch.JsonPatchOperation{{Operation: "add", Path: path, Value: value}}
	}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ops := make([]jsonpatch.JsonPatchOperation, 0, len(keys))
	for _, k := range keys {
		op := "add"
		if _, ok := current[k]; ok {
			op = "replace"
		}
		ops = append(ops, jsonpatch.JsonPatchOperation{Operation: op, Path: path + "/" + escapePointer(k), Value: entries[k]})
	}
	return ops
}

// escapePointer escapes a map key as one JSON pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
