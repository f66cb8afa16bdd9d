package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ChainError names the first line of a record file that does not verify.
type ChainError struct {
	Line   int    // 1-based line number
	Reason string // e.g. "hash mismatch (record edited)"
}

func (e *ChainError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Verify reads a record file and checks the chain; it returns the number of
// valid records, and on failure an error naming the first bad line: a
// *ChainError when the content is wrong, any other error when reading failed.
// An empty input is a valid chain of 0 records.
func Verify(r io.Reader) (int, error) {
	c := newChainReader(r)
	var rec DecisionRecord
	for {
		err := c.next(&rec)
		if errors.Is(err, io.EOF) {
			return c.records, nil
		}
		if err != nil {
			return c.records, err
		}
	}
}

// ReadRecords reads and verifies a record file. On a broken chain it returns
// the records before the first bad line together with the *ChainError, so a
// caller can show what is intact without mistaking it for the whole file.
func ReadRecords(r io.Reader) ([]DecisionRecord, error) {
	c := newChainReader(r)
	var out []DecisionRecord
	for {
		var rec DecisionRecord
		err := c.next(&rec)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}

// chainReader walks a record file line by line, checking each against the
// previous one.
type chainReader struct {
	br      *bufio.Reader
	buf     []byte
	line    int    // number of the line last read
	records int    // lines verified so far
	prev    string // hash of the last verified record
	// endsInNewline is false when the last line read had no "\n".
	endsInNewline bool
}

func newChainReader(r io.Reader) *chainReader {
	return &chainReader{br: bufio.NewReaderSize(r, 64<<10), prev: GenesisHash, endsInNewline: true}
}

// next decodes and verifies the next line into rec. It returns io.EOF after
// the last line, a *ChainError for a bad line, or a read error.
func (c *chainReader) next(rec *DecisionRecord) error {
	line, err := c.readLine()
	if err != nil {
		return err
	}
	*rec = DecisionRecord{}
	if reason := c.check(line, rec); reason != "" {
		return &ChainError{Line: c.line, Reason: reason}
	}
	c.prev = rec.Hash
	c.records++
	return nil
}

// readLine returns the next line without its "\n". The slice is reused.
func (c *chainReader) readLine() ([]byte, error) {
	c.buf = c.buf[:0]
	for {
		frag, err := c.br.ReadSlice('\n')
		if len(c.buf)+len(frag) > MaxLineBytes+1 {
			c.line++
			return nil, &ChainError{Line: c.line, Reason: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
		}
		c.buf = append(c.buf, frag...)
		switch {
		case err == nil:
			c.line++
			return c.buf[:len(c.buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(c.buf) == 0 {
				return nil, io.EOF
			}
			c.line++
			c.endsInNewline = false
			return c.buf, nil
		default:
			return nil, fmt.Errorf("read line %d: %w", c.line+1, err)
		}
	}
}

// check decodes line into rec and returns why it does not continue the
// chain, or "" when it does.
func (c *chainReader) check(line []byte, rec *DecisionRecord) string {
	if len(line) == 0 {
		return "empty line"
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(rec); err != nil {
		return describeDecodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "invalid JSON: data after the record"
	}
	if line[0] != '{' {
		return "not a decision record: expected a JSON object"
	}
	switch {
	case rec.Time.IsZero():
		return "not a decision record: no time"
	case rec.Decision == "":
		return "not a decision record: no decision"
	case !isHashHex(rec.PrevHash):
		return "prevHash is not 64 lowercase hex digits (record edited)"
	case !isHashHex(rec.Hash):
		return "hash is not 64 lowercase hex digits (record edited)"
	}
	if rec.PrevHash != c.prev {
		if c.line == 1 {
			return "prevHash is not the genesis hash (records removed from the start)"
		}
		return fmt.Sprintf("prevHash does not match line %d (record removed or reordered)", c.line-1)
	}
	computed, claimed, ok := lineHash(line, rec.PrevHash)
	if !ok || claimed != rec.Hash || computed != claimed {
		return "hash mismatch (record edited)"
	}
	return ""
}

func describeDecodeError(err error) string {
	var syntax *json.SyntaxError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON: line ends inside the record (truncated)"
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syntax.Offset, err)
	default: // well-formed JSON of the wrong shape: unknown member, wrong type, bad time
		return fmt.Sprintf("not a decision record: %v", err)
	}
}
