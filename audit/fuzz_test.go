package audit

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary bytes to Verify (it must answer, never panic,
// and agree with ReadRecords), and records built from the same bytes through
// a Recorder (their chain must always verify, and flipping any byte of it must
// not).
func FuzzVerify(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("\n"))
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"time":"2026-03-01T09:00:00Z","decision":"allowed","prevHash":"` + GenesisHash + `","hash":"` + GenesisHash + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Verify(bytes.NewReader(data))
		var ce *ChainError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("in-memory input gave a non-chain error: %v", err)
		}
		if ce != nil && ce.Line != n+1 {
			t.Fatalf("error on line %d after %d valid records", ce.Line, n)
		}
		recs, rerr := ReadRecords(bytes.NewReader(data))
		if len(recs) != n || (rerr == nil) != (err == nil) {
			t.Fatalf("ReadRecords = %d, %v; Verify = %d, %v", len(recs), rerr, n, err)
		}
		if err == nil && n > 0 {
			// Only a Recorder can produce a verifying file here (the fuzzer
			// cannot forge SHA-256), so recording the decoded records again
			// must reproduce the same chain.
			var again bytes.Buffer
			r, _ := NewRecorder(RecorderOptions{Stdout: &again})
			for _, rec := range recs {
				if err := r.Record(context.Background(), rec); err != nil {
					t.Fatalf("re-record: %v", err)
				}
			}
			if !bytes.Equal(bytes.TrimSuffix(data, []byte("\n")), bytes.TrimSuffix(again.Bytes(), []byte("\n"))) {
				t.Fatalf("re-recorded chain differs:\n%s\n%s", data, again.Bytes())
			}
		}

		var out bytes.Buffer
		r, err := NewRecorder(RecorderOptions{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		fields := bytes.Split(data, []byte{0})
		for i, field := range fields {
			s := string(field)
			rec := DecisionRecord{
				Time:      time.Unix(int64(len(s))*7919, int64(i)).UTC(),
				User:      s,
				Groups:    []string{s},
				Kind:      s,
				Namespace: s,
				Decision:  Decisions()[len(s)%len(Decisions())],
				Rules:     []RuleResult{{RuleID: s, Message: s}},
				Message:   s,
			}
			if err := r.Record(context.Background(), rec); err != nil {
				t.Fatalf("Record: %v", err)
			}
		}
		valid := out.Bytes()
		if n, err := Verify(bytes.NewReader(valid)); n != len(fields) || err != nil {
			t.Fatalf("recorded chain: Verify = %d, %v; want %d records\n%s", n, err, len(fields), valid)
		}
		i := len(data) % len(valid)
		valid[i] ^= 0x01
		if _, err := Verify(bytes.NewReader(valid)); err == nil {
			t.Fatalf("flipping byte %d left the chain verifying", i)
		}
	})
}
