package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/palisade-dev/palisade/audit"
)

func newAuditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check and summarise decision record files",
	}
	cmd.AddCommand(newAuditVerifyCommand(), newAuditShowCommand())
	return cmd
}

// chainBroken: exit 1, the file was read and does not verify.
type chainBroken struct{ err error }

func (e chainBroken) Error() string { return e.err.Error() }
func (e chainBroken) Unwrap() error { return e.err }
func (e chainBroken) ExitCode() int { return 1 }

func newAuditVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify a decision record file's hash chain",
		Long: `Checks that no record was edited, removed, inserted or reordered. Exit 0: the
chain holds; 1: it is broken (the first bad line is named); 2: the file cannot
be read.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return usageError{fmt.Errorf("open decision records: %w", err)}
			}
			defer f.Close()
			n, err := audit.Verify(f)
			var chain *audit.ChainError
			switch {
			case errors.As(err, &chain):
				return chainBroken{fmt.Errorf("%s: %w (%d records verified before it)", args[0], err, n)}
			case err != nil:
				return usageError{fmt.Errorf("read decision records %s: %w", args[0], err)}
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: %d records, chain intact\n", args[0], n)
			return err
		},
	}
}

func newAuditShowCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show FILE",
		Short: "Summarise a verified decision record file by decision, rule and namespace",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return usageError{fmt.Errorf("-o %q: want table or json", output)}
			}
			f, err := os.Open(args[0])
			if err != nil {
				return usageError{fmt.Errorf("open decision records: %w", err)}
			}
			defer f.Close()
			recs, err := audit.ReadRecords(f)
			var chain *audit.ChainError
			switch {
			case errors.As(err, &chain):
				return chainBroken{fmt.Errorf("%s: %w: refusing to summarise a broken chain", args[0], err)}
			case err != nil:
				return usageError{fmt.Errorf("read decision records %s: %w", args[0], err)}
			}
			sum := audit.Summarize(recs)
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(sum)
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "records\t%d\n", sum.Records)
			if sum.Records > 0 {
				fmt.Fprintf(w, "from\t%s\nto\t%s\n", sum.First.Format("2006-01-02T15:04:05Z07:00"), sum.Last.Format("2006-01-02T15:04:05Z07:00"))
			}
			for _, d := range audit.Decisions() {
				if n := sum.ByDecision[d]; n > 0 {
					fmt.Fprintf(w, "decision %s\t%d\n", d, n)
				}
			}
			for _, k := range sortedKeys(sum.ByRule) {
				fmt.Fprintf(w, "rule %s\t%d\n", k, sum.ByRule[k])
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
