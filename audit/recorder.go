package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Recorder appends hash-chained records to its sinks. Safe for concurrent use:
// records are chained in the order their Record calls take the lock, and each
// line goes to each sink in one Write call, so lines never interleave.
//
// Durability: a file line is handed to the kernel (write(2) on an O_APPEND
// file) before Record returns, so it survives a crash of the process. It is
// fsynced on Close, and after every record when RecorderOptions.SyncEachRecord
// is set; without that, a machine crash can lose the records of the last few
// seconds (the page cache's writeback interval) but cannot tear the chain in
// the middle.
type Recorder struct {
	mu     sync.Mutex
	stdout io.Writer
	file   *os.File
	path   string
	sync   bool
	size   int64  // bytes of the file known to hold whole records
	prev   string // hash of the last record written
	seal   *sealer
	closed bool
	// broken is set when a failed write could not be undone; the file then
	// ends in a torn line, and appending after it would fork the chain.
	broken error
}

// RecorderOptions configures a Recorder.
type RecorderOptions struct {
	// Stdout, if non-nil, receives every line (default: none).
	Stdout io.Writer
	// File, if set, is appended to; the chain continues from its last line.
	// It is created with mode 0600 (default: no file). The Recorder holds an
	// exclusive lock on it, so a second Recorder on the same file fails
	// instead of forking the chain.
	File string
	// SyncEachRecord fsyncs the file after every record (default false:
	// fsync on Close only). It costs a disk flush per admission request.
	SyncEachRecord bool
}

// NewRecorder opens the sinks; a File whose chain does not verify is an error
// wrapping a *ChainError that names the first bad line. A Recorder without
// sinks is valid and records nothing.
func NewRecorder(opts RecorderOptions) (*Recorder, error) {
	r := &Recorder{stdout: opts.Stdout, path: opts.File, sync: opts.SyncEachRecord, prev: GenesisHash, seal: newSealer()}
	if opts.File == "" {
		return r, nil
	}
	f, err := os.OpenFile(opts.File, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock audit file %s: %w", opts.File, err)
	}
	if err := r.resume(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("resume audit file %s: %w", opts.File, err)
	}
	r.file = f
	return r, nil
}

// resume verifies the existing file and continues its chain.
func (r *Recorder) resume(f *os.File) error {
	c := newChainReader(f)
	var rec DecisionRecord
	for {
		err := c.next(&rec)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("seek end: %w", err)
	}
	if !c.endsInNewline {
		// The last record verified, so only its "\n" is missing (a writer
		// stopped between the two); without it the next line would join it.
		if _, err := f.Write([]byte("\n")); err != nil {
			return fmt.Errorf("end last line: %w", err)
		}
		size++
	}
	r.size = size
	r.prev = c.prev
	return nil
}

// Record stamps PrevHash/Hash and writes the record as one line to every sink.
// A zero Time is set to now; Time is stored in UTC. Caller-set PrevHash/Hash
// are overwritten.
//
// The file, when there is one, holds the chain: if writing it fails, the
// partial line is cut off again, the chain does not advance and the error is
// returned, so the caller may retry. Stdout is written after the file; if only
// that fails, the record is already in the file and the error says so. ctx is
// not consulted: a decision that was made is recorded even if the request has
// since been abandoned, and a local write is never stopped halfway.
func (r *Recorder) Record(ctx context.Context, rec DecisionRecord) error {
	if !rec.Decision.Known() {
		return fmt.Errorf("record decision: unknown decision %q", rec.Decision)
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	rec.Time = rec.Time.UTC()

	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return errors.New("record decision: recorder is closed")
	case r.broken != nil:
		return fmt.Errorf("record decision: %w", r.broken)
	case r.file == nil && r.stdout == nil:
		return nil
	}
	line, sum, err := r.seal.seal(&rec, r.prev)
	if err != nil {
		return fmt.Errorf("record decision: %w", err)
	}
	if r.file != nil {
		written, err := r.appendFile(line)
		if written {
			r.prev = sum
		}
		if err != nil {
			return fmt.Errorf("record decision: %w", err)
		}
	}
	if r.stdout != nil {
		if _, err := r.stdout.Write(line); err != nil {
			if r.file != nil {
				return fmt.Errorf("record decision: write stdout (record %s is in %s): %w", sum, r.path, err)
			}
			return fmt.Errorf("record decision: write stdout: %w", err)
		}
		r.prev = sum
	}
	return nil
}

// appendFile writes one line and undoes a partial write. written reports
// whether the line is now in the file, which is true even when only the
// fsync after it failed.
func (r *Recorder) appendFile(line []byte) (written bool, err error) {
	n, err := r.file.Write(line)
	if err == nil {
		r.size += int64(n)
		if r.sync {
			if err := r.file.Sync(); err != nil {
				return true, fmt.Errorf("record written but not durable: %w", err)
			}
		}
		return true, nil
	}
	if n > 0 {
		if terr := r.file.Truncate(r.size); terr != nil {
			r.broken = fmt.Errorf("audit file ends in a torn line that could not be removed: %w", terr)
			return false, fmt.Errorf("append line: %w (and could not remove the partial line: %v)", err, terr)
		}
	}
	return false, fmt.Errorf("append line: %w", err)
}

// Close flushes and closes the file sink. Records after Close fail; a second
// Close does nothing.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.file == nil {
		return nil
	}
	serr := r.file.Sync()
	cerr := r.file.Close() // releases the lock
	if serr != nil {
		return fmt.Errorf("close audit file: %w", serr)
	}
	if cerr != nil {
		return fmt.Errorf("close audit file: %w", cerr)
	}
	return nil
}
