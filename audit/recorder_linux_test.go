package audit

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestPartialFileWriteIsUndone makes the kernel cut a record line short with
// RLIMIT_FSIZE (a real short write, as on a full disk) and checks that the
// torn line is removed and the chain continues. Not parallel: the limit is
// process-wide.
func TestPartialFileWriteIsUndone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.jsonl")
	copyChain(t, path, 2, nil)
	r, err := NewRecorder(RecorderOptions{File: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	limited := syscall.Rlimit{Cur: uint64(st.Size()) + 100, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limited); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	err = r.Record(context.Background(), sampleRecord(2))
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatalf("restore rlimit: %v", rerr)
	}
	if err == nil {
		t.Fatal("a short write returned no error")
	}
	t.Logf("short write reported as: %v", err)
	if after, _ := os.Stat(path); after.Size() != st.Size() {
		t.Fatalf("file is %d bytes after a failed write, want %d (torn line left behind)", after.Size(), st.Size())
	}
	if err := r.Record(context.Background(), sampleRecord(3)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := Verify(f); n != 3 || err != nil {
		t.Fatalf("Verify = %d, %v; want 3 records, chain intact", n, err)
	}
}
