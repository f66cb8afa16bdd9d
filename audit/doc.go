// Package audit keeps Palisade's decision records: one hash-chained JSON line
// per admission decision. They are the evidence a compliance review (PCI-DSS,
// HIPAA, SOC 2) asks for — who asked for what, what the labeling standard
// said, what was admitted — and the chain lets a reviewer show that no record
// was edited, removed or reordered since it was written.
//
// # Record file format
//
// A record file is a sequence of lines, each ending in "\n" (the final "\n"
// may be missing). Line i (counting from 1) is the canonical encoding of one
// DecisionRecord: the JSON object that Go's encoding/json writes for the
// struct with HTML escaping off — members in the struct's declaration order,
// members tagged omitempty left out when empty, times in RFC 3339 with
// nanoseconds trimmed, no insignificant whitespace. "hash" is always the last
// member.
//
// The chain, for an auditor re-implementing it:
//
//   - prevHash of line 1 is GenesisHash (64 ASCII "0"); prevHash of line i > 1
//     is the hash of line i-1.
//   - hash and prevHash are 64 lowercase hexadecimal digits.
//   - A line (without its "\n") must end in `,"hash":"H"}` where H is its
//     hash. Let body be the line with H removed, so it ends in `"hash":""}`.
//     Then H = lowercase-hex(SHA-256(prevHash || body)), where prevHash is
//     the record's own prevHash value as 64 ASCII bytes and || is byte
//     concatenation.
//
// Because the hash covers the line's bytes, no JSON canonicalisation is
// needed to check it; in Python:
//
//	prev = "0" * 64
//	for line in open(path, "rb"):
//	    line = line.rstrip(b"\n")
//	    h = line[-66:-2].decode()
//	    body = line[:-66] + b'"}'
//	    assert json.loads(line)["prevHash"] == prev
//	    assert hashlib.sha256(prev.encode() + body).hexdigest() == h
//	    prev = h
//
// # What the chain proves
//
// The chain has no secret: it shows that a file is the unaltered output of a
// Recorder up to its last line, so an edited byte, a removed or inserted line,
// reordered lines or a torn last line are all found and named by line. It
// cannot show that lines were cut off the end at a line boundary, nor stop
// someone who can write the file from rewriting the whole chain. For that,
// keep the last hash somewhere the writer cannot reach (a report, a ticket,
// an append-only store) and check later that the chain still passes through
// it.
package audit
