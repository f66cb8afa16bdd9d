package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prepare  func(t *testing.T, path string) // builds the existing file
		wantLine int                             // 0: resume must succeed
		wantAll  int                             // records after appending 2
	}{
		{name: "no file yet", prepare: func(*testing.T, string) {}, wantAll: 2},
		{name: "empty file", prepare: func(t *testing.T, path string) { writeFile(t, path, nil) }, wantAll: 2},
		{name: "three records", prepare: func(t *testing.T, path string) { copyChain(t, path, 3, nil) }, wantAll: 5},
		{name: "last newline missing", prepare: func(t *testing.T, path string) {
			copyChain(t, path, 3, func(b []byte) []byte { return b[:len(b)-1] })
		}, wantAll: 5},
		{name: "edited middle record", prepare: func(t *testing.T, path string) {
			copyChain(t, path, 4, func(b []byte) []byte { return bytes.Replace(b, []byte("web-2"), []byte("web-X"), 1) })
		}, wantLine: 3},
		{name: "torn last line", prepare: func(t *testing.T, path string) {
			copyChain(t, path, 3, func(b []byte) []byte { return b[:len(b)-20] })
		}, wantLine: 3},
		{name: "foreign content", prepare: func(t *testing.T, path string) { writeFile(t, path, []byte("hello\n")) }, wantLine: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "d.jsonl")
			tc.prepare(t, path)
			before, _ := os.ReadFile(path)
			r, err := NewRecorder(RecorderOptions{File: path})
			if tc.wantLine != 0 {
				var ce *ChainError
				if !errors.As(err, &ce) || ce.Line != tc.wantLine {
					t.Fatalf("NewRecorder err = %v, want *ChainError at line %d", err, tc.wantLine)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
					t.Fatal("a refused file was modified")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if err := r.Record(context.Background(), sampleRecord(100+i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if n, err := Verify(f); n != tc.wantAll || err != nil {
				t.Fatalf("Verify = %d, %v; want %d records, chain intact", n, err, tc.wantAll)
			}
		})
	}
}

func TestFileModeAndExclusiveLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.jsonl")
	r, err := NewRecorder(RecorderOptions{File: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	if _, err := NewRecorder(RecorderOptions{File: path}); err == nil || !strings.Contains(err.Error(), "another recorder") {
		t.Fatalf("second recorder on the same file: err = %v, want lock error", err)
	}
	r.Close()
	r2, err := NewRecorder(RecorderOptions{File: path})
	if err != nil {
		t.Fatalf("after Close the file must be free: %v", err)
	}
	r2.Close()
}

func TestConcurrentRecord(t *testing.T) {
	const goroutines, each = 32, 40
	var stdout bytes.Buffer // written under the Recorder's lock
	path := filepath.Join(t.TempDir(), "d.jsonl")
	r, err := NewRecorder(RecorderOptions{File: path, Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if err := r.Record(context.Background(), sampleRecord(g*each+i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := ReadRecords(f)
	if err != nil || len(recs) != goroutines*each {
		t.Fatalf("file: %d records, %v; want %d, chain intact", len(recs), err, goroutines*each)
	}
	seen := map[string]bool{}
	for _, rec := range recs {
		seen[rec.RequestUID] = true
	}
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct records, want %d", len(seen), goroutines*each)
	}
	if n, err := Verify(&stdout); n != goroutines*each || err != nil {
		t.Fatalf("stdout: Verify = %d, %v", n, err)
	}
}

// failingWriter fails its first fails writes without writing anything.
type failingWriter struct {
	fails int
	buf   bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.fails > 0 {
		w.fails--
		return 0, errors.New("pipe closed")
	}
	return w.buf.Write(p)
}

func TestFailedWriteDoesNotAdvanceChain(t *testing.T) {
	t.Run("stdout only", func(t *testing.T) {
		w := &failingWriter{fails: 1}
		r, _ := NewRecorder(RecorderOptions{Stdout: w})
		if err := r.Record(context.Background(), sampleRecord(0)); err == nil {
			t.Fatal("a failed write returned no error")
		}
		if err := r.Record(context.Background(), sampleRecord(1)); err != nil {
			t.Fatal(err)
		}
		if n, err := Verify(&w.buf); n != 1 || err != nil {
			t.Fatalf("Verify = %d, %v; want the retried record to start the chain", n, err)
		}
	})
	t.Run("file and stdout", func(t *testing.T) {
		w := &failingWriter{fails: 1}
		path := filepath.Join(t.TempDir(), "d.jsonl")
		r, err := NewRecorder(RecorderOptions{Stdout: w, File: path})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Record(context.Background(), sampleRecord(0))
		if err == nil || !strings.Contains(err.Error(), "is in "+path) {
			t.Fatalf("err = %v, want stdout error saying the record is in the file", err)
		}
		if err := r.Record(context.Background(), sampleRecord(1)); err != nil {
			t.Fatal(err)
		}
		r.Close()
		f, _ := os.Open(path)
		defer f.Close()
		if n, err := Verify(f); n != 2 || err != nil {
			t.Fatalf("file: Verify = %d, %v; want 2 records", n, err)
		}
	})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyChain writes a valid chain of n records to path, passed through edit.
func copyChain(t *testing.T, path string, n int, edit func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(writeChain(t, n))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		data = edit(data)
	}
	writeFile(t, path, data)
}
