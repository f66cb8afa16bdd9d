package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// auditorCheck re-implements the chain from the package documentation alone,
// so a change to the format that the docs do not describe fails here.
func auditorCheck(t *testing.T, lines [][]byte) {
	t.Helper()
	prev := strings.Repeat("0", 64)
	for i, l := range lines {
		line := bytes.TrimSuffix(l, []byte("\n"))
		var fields map[string]any
		if err := json.Unmarshal(line, &fields); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if fields["prevHash"] != prev {
			t.Fatalf("line %d: prevHash %v, want %s", i+1, fields["prevHash"], prev)
		}
		h := string(line[len(line)-66 : len(line)-2])
		if !bytes.HasSuffix(line, []byte(`,"hash":"`+h+`"}`)) || fields["hash"] != h {
			t.Fatalf("line %d does not end in its hash member: %s", i+1, line)
		}
		body := append(append([]byte{}, line[:len(line)-66]...), `"}`...)
		sum := sha256.Sum256(append([]byte(prev), body...))
		if got := hex.EncodeToString(sum[:]); got != h {
			t.Fatalf("line %d: hash %s, recomputed %s", i+1, h, got)
		}
		prev = h
	}
}

func TestRecordChainsAndMatchesDocumentedFormat(t *testing.T) {
	var stdout bytes.Buffer
	path := t.TempDir() + "/d.jsonl"
	r, err := NewRecorder(RecorderOptions{Stdout: &stdout, File: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := r.Record(context.Background(), sampleRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	lines := chainLines(t, path)
	if len(lines) != 5 {
		t.Fatalf("file has %d lines, want 5", len(lines))
	}
	var file bytes.Buffer
	for _, l := range lines {
		file.Write(l)
	}
	if !bytes.Equal(file.Bytes(), stdout.Bytes()) {
		t.Fatalf("stdout and file differ:\n%s\n%s", stdout.Bytes(), file.Bytes())
	}
	auditorCheck(t, lines)
	if !bytes.Contains(lines[1], []byte(`<prod|staging>`)) {
		t.Errorf("HTML characters escaped in %s", lines[1])
	}
	if !bytes.HasPrefix(lines[0], []byte(`{"time":"2026-03-01T09:00:00Z","requestUID":"uid-0000"`)) {
		t.Errorf("line 1 is not in canonical member order: %s", lines[0])
	}
}

func TestRecordStampsAndValidates(t *testing.T) {
	var out bytes.Buffer
	r, err := NewRecorder(RecorderOptions{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := time.Now()
	rec := sampleRecord(0)
	rec.Time = time.Time{}
	rec.PrevHash, rec.Hash = "forged", "forged"
	if err := r.Record(ctx, rec); err != nil {
		t.Fatal(err)
	}
	local := sampleRecord(1)
	local.Time = time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("CET", 3600))
	if err := r.Record(ctx, local); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Decision{"", "maybe"} {
		rec := sampleRecord(2)
		rec.Decision = bad
		err := r.Record(ctx, rec)
		if err == nil || !strings.Contains(err.Error(), "unknown decision") {
			t.Errorf("decision %q: err = %v, want unknown decision", bad, err)
		}
	}
	got, err := ReadRecords(&out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2 (invalid ones must not be written)", len(got))
	}
	if got[0].Time.Before(before.Add(-time.Second)) || got[0].PrevHash != GenesisHash {
		t.Errorf("record 1 not stamped: time %v prevHash %q", got[0].Time, got[0].PrevHash)
	}
	if got[1].Time.Location() != time.UTC || !got[1].Time.Equal(local.Time) {
		t.Errorf("record 2 time = %v, want %v in UTC", got[1].Time, local.Time)
	}
}

func TestRecorderWithoutSinksRecordsNothing(t *testing.T) {
	r, err := NewRecorder(RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Record(context.Background(), sampleRecord(0)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRecordAfterClose(t *testing.T) {
	r, err := NewRecorder(RecorderOptions{File: t.TempDir() + "/d.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := r.Record(context.Background(), sampleRecord(0)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Record after Close: err = %v, want closed", err)
	}
}

func TestRecordRefusesOversizedLine(t *testing.T) {
	var out bytes.Buffer
	r, err := NewRecorder(RecorderOptions{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	rec := sampleRecord(0)
	rec.Message = strings.Repeat("x", MaxLineBytes)
	if err := r.Record(context.Background(), rec); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v, want line too long", err)
	}
	if err := r.Record(context.Background(), sampleRecord(1)); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(&out); n != 1 || err != nil {
		t.Fatalf("Verify = %d, %v; want 1 record, chain intact", n, err)
	}
}
