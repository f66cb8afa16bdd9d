package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"time"
)

// Decision is the outcome recorded for one admission request.
type Decision string

const (
	DecisionAllowed Decision = "allowed"
	DecisionDenied  Decision = "denied"
	DecisionWarned  Decision = "warned"
	DecisionMutated Decision = "mutated"
	DecisionDryRun  Decision = "dryrun" // a rule in dryrun mode was violated; admitted silently
	DecisionError   Decision = "error"  // internal error; the API server's failurePolicy decides
)

// Decisions lists every Decision a Recorder accepts, in a stable order.
func Decisions() []Decision {
	return []Decision{DecisionAllowed, DecisionDenied, DecisionWarned, DecisionMutated, DecisionDryRun, DecisionError}
}

// Known reports whether d is one of Decisions().
func (d Decision) Known() bool {
	switch d {
	case DecisionAllowed, DecisionDenied, DecisionWarned, DecisionMutated, DecisionDryRun, DecisionError:
		return true
	}
	return false
}

// RuleResult is one violated rule in a decision.
type RuleResult struct {
	RuleID  string `json:"ruleID"`
	Action  string `json:"action"`
	Message string `json:"message"`
}

// DecisionRecord is one admission decision. The field order is part of the
// record file format (see the package documentation): Hash must stay last.
type DecisionRecord struct {
	Time       time.Time    `json:"time"`
	RequestUID string       `json:"requestUID"`
	Webhook    string       `json:"webhook"` // "mutate" | "validate" | "reconcile"
	User       string       `json:"user"`
	Groups     []string     `json:"groups,omitempty"`
	Operation  string       `json:"operation"`
	Kind       string       `json:"kind"` // group/version/kind, e.g. "apps/v1/Deployment"
	Namespace  string       `json:"namespace,omitempty"`
	Name       string       `json:"name,omitempty"`
	DryRun     bool         `json:"dryRun,omitempty"`
	Decision   Decision     `json:"decision"`
	Rules      []RuleResult `json:"rules,omitempty"`
	Patch      []string     `json:"patch,omitempty"`    // e.g. "add /metadata/labels/env=prod"
	Standard   string       `json:"standard,omitempty"` // standard name@version
	Message    string       `json:"message,omitempty"`
	// PrevHash and Hash chain the records; set by the Recorder.
	PrevHash string `json:"prevHash"`
	Hash     string `json:"hash"`
}

// GenesisHash is the PrevHash of the first record of every file.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// MaxLineBytes bounds one record line (without its newline). The API server
// caps admission requests far below it; the bound exists so that verifying a
// hostile file cannot exhaust memory, and the Recorder refuses to write a line
// the verifier would refuse to read.
const MaxLineBytes = 16 << 20

const hashHexLen = 2 * sha256.Size

var (
	// emptyHashTail ends the canonical encoding of a record whose Hash is "".
	emptyHashTail = []byte(`,"hash":""}`)
	// hashMemberPrefix precedes the hash value at the end of a sealed line.
	hashMemberPrefix = []byte(`,"hash":"`)
)

// sealer encodes records canonically and stamps their hashes. It reuses its
// buffers, so it is not safe for concurrent use; the Recorder guards it.
type sealer struct {
	body bytes.Buffer // canonical encoding with Hash "", plus the encoder's "\n"
	enc  *json.Encoder
	sum  hash.Hash
	line []byte
}

func newSealer() *sealer {
	s := &sealer{sum: sha256.New()}
	s.enc = json.NewEncoder(&s.body)
	// Escaping <, > and & as \u003c... only hurts reading the evidence.
	s.enc.SetEscapeHTML(false)
	return s
}

// seal chains rec onto prev and returns its line, newline included. The
// returned slice is valid until the next call.
func (s *sealer) seal(rec *DecisionRecord, prev string) (line []byte, sum string, err error) {
	rec.PrevHash = prev
	rec.Hash = ""
	s.body.Reset()
	if err := s.enc.Encode(rec); err != nil {
		return nil, "", fmt.Errorf("encode record: %w", err)
	}
	body := bytes.TrimSuffix(s.body.Bytes(), []byte("\n"))
	if !bytes.HasSuffix(body, emptyHashTail) {
		return nil, "", errors.New("encode record: hash is not the last member")
	}
	var digest [hashHexLen]byte
	hex.Encode(digest[:], s.hashBody(prev, body))
	// body ends in `"hash":""}`: the hash goes between the two quotes.
	s.line = append(s.line[:0], body[:len(body)-2]...)
	s.line = append(s.line, digest[:]...)
	s.line = append(s.line, '"', '}', '\n')
	if len(s.line)-1 > MaxLineBytes {
		return nil, "", fmt.Errorf("encode record: line is %d bytes, more than the %d a record may take", len(s.line)-1, MaxLineBytes)
	}
	return s.line, string(digest[:]), nil
}

func (s *sealer) hashBody(prev string, body []byte) []byte {
	s.sum.Reset()
	s.sum.Write([]byte(prev))
	s.sum.Write(body)
	return s.sum.Sum(nil)
}

// lineHash recomputes the hash of a sealed line (without its newline) and
// returns it with the hash the line claims. ok is false when the line does
// not end in a hash member of the right shape.
func lineHash(line []byte, prev string) (computed, claimed string, ok bool) {
	const tail = len(`"}`)
	n := len(line)
	if n < len(hashMemberPrefix)+hashHexLen+tail ||
		!bytes.HasSuffix(line, []byte(`"}`)) ||
		!bytes.Equal(line[n-tail-hashHexLen-len(hashMemberPrefix):n-tail-hashHexLen], hashMemberPrefix) {
		return "", "", false
	}
	claimed = string(line[n-tail-hashHexLen : n-tail])
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(line[:n-tail-hashHexLen])
	h.Write([]byte(`"}`))
	return hex.EncodeToString(h.Sum(nil)), claimed, true
}

func isHashHex(s string) bool {
	if len(s) != hashHexLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
