package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

// tamper edits a valid chain's lines (each with its "\n") and returns the file.
type tamper func(lines [][]byte) []byte

func join(lines [][]byte) []byte { return bytes.Join(lines, nil) }

func TestVerifyDetectsTampering(t *testing.T) {
	const n = 6
	for _, tc := range []struct {
		name       string
		edit       tamper
		wantLine   int
		wantReason string
		wantValid  int
	}{
		{name: "intact", edit: join, wantValid: n},
		{name: "intact without final newline", edit: func(l [][]byte) []byte {
			b := join(l)
			return b[:len(b)-1]
		}, wantValid: n},
		{name: "one byte edited in a middle record", edit: func(l [][]byte) []byte {
			l[3] = bytes.Replace(l[3], []byte("deployer"), []byte("deployeR"), 1)
			return join(l)
		}, wantLine: 4, wantReason: "line 4: hash mismatch (record edited)", wantValid: 3},
		{name: "decision flipped", edit: func(l [][]byte) []byte {
			l[1] = bytes.Replace(l[1], []byte(`"decision":"denied"`), []byte(`"decision":"allowed"`), 1)
			return join(l)
		}, wantLine: 2, wantReason: "line 2: hash mismatch (record edited)", wantValid: 1},
		{name: "middle line removed", edit: func(l [][]byte) []byte {
			return join(append(l[:2:2], l[3:]...))
		}, wantLine: 3, wantReason: "line 3: prevHash does not match line 2 (record removed or reordered)", wantValid: 2},
		{name: "first line removed", edit: func(l [][]byte) []byte { return join(l[1:]) },
			wantLine: 1, wantReason: "line 1: prevHash is not the genesis hash (records removed from the start)"},
		{name: "two lines swapped", edit: func(l [][]byte) []byte {
			l[2], l[3] = l[3], l[2]
			return join(l)
		}, wantLine: 3, wantReason: "line 3: prevHash does not match line 2 (record removed or reordered)", wantValid: 2},
		{name: "line duplicated", edit: func(l [][]byte) []byte {
			return join(append(l[:3:3], l[2:]...))
		}, wantLine: 4, wantReason: "line 4: prevHash does not match line 3 (record removed or reordered)", wantValid: 3},
		{name: "last line truncated", edit: func(l [][]byte) []byte {
			b := join(l)
			return b[:len(b)-30]
		}, wantLine: n, wantReason: "line 6: invalid JSON: line ends inside the record (truncated)", wantValid: n - 1},
		{name: "blank line inserted", edit: func(l [][]byte) []byte {
			return join(append(l[:2:2], append([][]byte{[]byte("\n")}, l[2:]...)...))
		}, wantLine: 3, wantReason: "line 3: empty line", wantValid: 2},
		{name: "garbage line", edit: func(l [][]byte) []byte {
			l[1] = []byte("{not json\n")
			return join(l)
		}, wantLine: 2, wantReason: "line 2: invalid JSON at byte 2: invalid character 'n' looking for beginning of object key string", wantValid: 1},
		{name: "unknown member added", edit: func(l [][]byte) []byte {
			l[0] = bytes.Replace(l[0], []byte(`{"time"`), []byte(`{"approvedBy":"x","time"`), 1)
			return join(l)
		}, wantLine: 1, wantReason: `line 1: not a decision record: json: unknown field "approvedBy"`},
		{name: "trailing data", edit: func(l [][]byte) []byte {
			l[4] = append(bytes.TrimSuffix(l[4], []byte("\n")), []byte(" {}\n")...)
			return join(l)
		}, wantLine: 5, wantReason: "line 5: invalid JSON: data after the record", wantValid: 4},
		{name: "hash replaced by a well-formed other hash", edit: func(l [][]byte) []byte {
			h := l[1][len(l[1])-67 : len(l[1])-3]
			l[1] = bytes.Replace(l[1], h, bytes.Repeat([]byte("a"), 64), 1)
			return join(l)
		}, wantLine: 2, wantReason: "line 2: hash mismatch (record edited)", wantValid: 1},
		{name: "CRLF line ending", edit: func(l [][]byte) []byte {
			l[0] = append(bytes.TrimSuffix(l[0], []byte("\n")), "\r\n"...)
			return join(l)
		}, wantLine: 1, wantReason: "line 1: hash mismatch (record edited)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.edit(chainLines(t, writeChain(t, n)))
			count, err := Verify(bytes.NewReader(data))
			if count != tc.wantValid {
				t.Errorf("count = %d, want %d", count, tc.wantValid)
			}
			if tc.wantLine == 0 {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Line != tc.wantLine || err.Error() != tc.wantReason {
				t.Fatalf("err = %v, want %q", err, tc.wantReason)
			}
		})
	}
}

// TestEveryByteEditIsFound flips each byte of a middle record in turn: the
// error must always name that line, whatever JSON the edit leaves.
func TestEveryByteEditIsFound(t *testing.T) {
	lines := chainLines(t, writeChain(t, 5))
	const victim = 2 // 0-based: line 3
	orig := lines[victim]
	for i := range len(orig) {
		for _, mask := range []byte{0x01, 0x20} {
			edited := append([]byte{}, orig...)
			edited[i] ^= mask
			lines[victim] = edited
			_, err := Verify(bytes.NewReader(join(lines)))
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Line != victim+1 {
				t.Fatalf("byte %d ^ %#x (%q): err = %v, want an error on line %d", i, mask, orig[i], err, victim+1)
			}
		}
	}
}

func TestVerifyEmptyAndHugeInput(t *testing.T) {
	if n, err := Verify(strings.NewReader("")); n != 0 || err != nil {
		t.Fatalf("empty: Verify = %d, %v; want 0, nil", n, err)
	}
	if _, err := Verify(strings.NewReader("\n")); err == nil {
		t.Fatal("a lone newline verified")
	}

	var out bytes.Buffer
	r, _ := NewRecorder(RecorderOptions{Stdout: &out})
	huge := sampleRecord(1)
	huge.Message = strings.Repeat("m", 3<<20) // well past bufio.Scanner's 64 KiB
	for _, rec := range []DecisionRecord{sampleRecord(0), huge, sampleRecord(2)} {
		if err := r.Record(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	data := out.Bytes()
	if n, err := Verify(bytes.NewReader(data)); n != 3 || err != nil {
		t.Fatalf("huge line: Verify = %d, %v; want 3 records", n, err)
	}
	// One byte edited deep inside the huge line is still found.
	edited := bytes.Clone(data)
	edited[len(data)/2] = 'M'
	if _, err := Verify(bytes.NewReader(edited)); err == nil || err.Error() != "line 2: hash mismatch (record edited)" {
		t.Fatalf("edit in huge line: err = %v", err)
	}
	// A line over the bound is refused without reading it all into memory.
	tooLong := append(bytes.Repeat([]byte("x"), MaxLineBytes+1), '\n')
	if _, err := Verify(bytes.NewReader(tooLong)); err == nil || !strings.HasPrefix(err.Error(), "line 1: line longer than") {
		t.Fatalf("over-long line: err = %v", err)
	}
}

func TestReadRecords(t *testing.T) {
	lines := chainLines(t, writeChain(t, 4))
	recs, err := ReadRecords(bytes.NewReader(join(lines)))
	if err != nil || len(recs) != 4 {
		t.Fatalf("ReadRecords = %d records, %v", len(recs), err)
	}
	if recs[1].Decision != DecisionDenied || recs[1].Rules[0].RuleID != "require-env" || recs[3].Namespace != "team-0" {
		t.Fatalf("records decoded wrongly: %+v", recs[1])
	}
	lines[2] = bytes.Replace(lines[2], []byte("web-2"), []byte("web-9"), 1)
	recs, err = ReadRecords(bytes.NewReader(join(lines)))
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Line != 3 || len(recs) != 2 {
		t.Fatalf("broken chain: %d records, err %v; want the 2 intact ones and line 3", len(recs), err)
	}
}

func TestVerifyReadErrorIsNotAChainError(t *testing.T) {
	data, err := os.ReadFile(writeChain(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	r := iotest.TimeoutReader(iotest.OneByteReader(bytes.NewReader(data)))
	_, err = Verify(r)
	var ce *ChainError
	if err == nil || errors.As(err, &ce) || !errors.Is(err, iotest.ErrTimeout) {
		t.Fatalf("err = %v, want the read error, not a chain error", err)
	}
}
