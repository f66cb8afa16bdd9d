package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// exitCoder is implemented by errors that carry their own process exit code
// (for example `palisade audit verify` exits 1 on a broken chain, 2 on an
// unreadable file).
type exitCoder interface {
	ExitCode() int
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "palisade",
		Short: "Zero-trust networking by default for Kubernetes",
		Long: `Palisade holds every workload to a labeling standard at admission, guarantees each
governed namespace its baseline NetworkPolicies, enforces NetworkPolicies in the
kernel with eBPF, and keeps hash-chained decision records as compliance evidence.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(subcommands()...)
	return root
}

// execute runs the command tree and maps its error to an exit code: 0 on
// success, the error's own code if it has one, else 1.
func execute(ctx context.Context, cmd *cobra.Command, args []string, stderr io.Writer) int {
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var coded exitCoder
	if errors.As(err, &coded) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "palisade:", msg)
		}
		return coded.ExitCode()
	}
	fmt.Fprintln(stderr, "palisade:", err)
	return 1
}
