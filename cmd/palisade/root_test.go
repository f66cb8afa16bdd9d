package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

type codedErr struct{ code int }

func (e codedErr) Error() string { return "coded" }
func (e codedErr) ExitCode() int { return e.code }

func TestExecuteExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "version", args: []string{"version"}, wantCode: 0, wantOut: "palisade v"},
		{name: "unknown command", args: []string{"nope"}, wantCode: 1},
		{name: "version takes no args", args: []string{"version", "x"}, wantCode: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			root := newRootCommand()
			root.SetOut(&out)
			root.SetErr(&errOut)
			code := execute(context.Background(), root, tc.args, &errOut)
			if code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d (stderr %q)", code, tc.wantCode, errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("stdout %q does not contain %q", out.String(), tc.wantOut)
			}
		})
	}
}

func TestExecuteUsesErrorExitCode(t *testing.T) {
	root := newRootCommand()
	root.RunE = func(_ *cobra.Command, _ []string) error { return errors.Join(codedErr{code: 2}) }
	var errOut bytes.Buffer
	if code := execute(context.Background(), root, nil, &errOut); code != 2 {
		t.Fatalf("exit code = %d, want 2", code)
	}
}
