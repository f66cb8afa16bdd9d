package audit

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
)

func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	rec := sampleRecord(1) // a denial with one rule: the typical interesting record
	for _, bc := range []struct {
		name string
		opts func(dir string) RecorderOptions
	}{
		{"file", func(dir string) RecorderOptions { return RecorderOptions{File: filepath.Join(dir, "d.jsonl")} }},
		{"file+sync", func(dir string) RecorderOptions {
			return RecorderOptions{File: filepath.Join(dir, "d.jsonl"), SyncEachRecord: true}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, err := NewRecorder(bc.opts(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Record(ctx, rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("file/parallel", func(b *testing.B) {
		r, err := NewRecorder(RecorderOptions{File: filepath.Join(b.TempDir(), "d.jsonl")})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := r.Record(ctx, rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkVerify(b *testing.B) {
	var out bytes.Buffer
	r, _ := NewRecorder(RecorderOptions{Stdout: &out})
	const n = 1000
	for i := range n {
		if err := r.Record(context.Background(), sampleRecord(i)); err != nil {
			b.Fatal(err)
		}
	}
	data := out.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if got, err := Verify(bytes.NewReader(data)); got != n || err != nil {
			b.Fatal(got, err)
		}
	}
}
