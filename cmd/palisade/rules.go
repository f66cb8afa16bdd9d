package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"

	"github.com/palisade-dev/palisade/rules"
	"github.com/palisade-dev/palisade/rules/gatekeeper"
)

// rulesInputError is bad input to `palisade rules`: a standard or a rules
// file that does not parse or validate. It exits 2, so scripts can tell a
// broken file (fix the file) from a failed run (exit 1).
type rulesInputError struct{ err error }

func (e rulesInputError) Error() string { return e.err.Error() }
func (e rulesInputError) Unwrap() error { return e.err }
func (e rulesInputError) ExitCode() int { return 2 }

func newRulesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Show, check and export the labeling standard and custom Gatekeeper rules",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newRulesExportCommand(), newRulesShowCommand(), newRulesCheckCommand())
	return cmd
}

// loadStandard reads the standard at path, or the embedded default when
// path is empty.
func loadStandard(path string) (*rules.Standard, error) {
	if path == "" {
		return rules.Default(), nil
	}
	std, err := rules.Load(path)
	if err != nil {
		return nil, rulesInputError{err}
	}
	return std, nil
}

func newRulesExportCommand() *cobra.Command {
	var standard, output string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the standard as Gatekeeper ConstraintTemplates, constraints and ExpansionTemplates",
		Long: `Write the labeling standard as Gatekeeper objects (YAML), for clusters that
enforce with Gatekeeper: ExpansionTemplates for the workload kinds, one
ConstraintTemplate per target kind, one constraint per label rule. Per-namespace
rule-action overrides and label inheritance by mutation are not exported.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			std, err := loadStandard(standard)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := gatekeeper.ExportYAML(std, &buf); err != nil {
				return rulesInputError{err}
			}
			if output == "" || output == "-" {
				_, err := cmd.OutOrStdout().Write(buf.Bytes())
				return err
			}
			if err := os.WriteFile(output, buf.Bytes(), 0o644); err != nil {
				return fmt.Errorf("write export: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&standard, "standard", "", "labeling standard file (default: the embedded default)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE instead of standard output")
	return cmd
}

func newRulesShowCommand() *cobra.Command {
	var standard string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the effective labeling standard as YAML",
		Long: `Print the labeling standard in effect, as YAML that --standard accepts back,
with every default spelled out (a rule without an action acts deny).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			std, err := loadStandard(standard)
			if err != nil {
				return err
			}
			out, err := effectiveYAML(std)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "# Labeling standard %s@%s from %s.\n%s",
				std.Metadata.Name, std.Metadata.Version, std.Source, out)
			return err
		},
	}
	cmd.Flags().StringVar(&standard, "standard", "", "labeling standard file (default: the embedded default)")
	return cmd
}

// effectiveYAML renders std with its defaults filled in.
func effectiveYAML(std *rules.Standard) ([]byte, error) {
	eff := *std
	eff.Spec.Labels = append([]rules.LabelRule(nil), std.Spec.Labels...)
	for i := range eff.Spec.Labels {
		if eff.Spec.Labels[i].Action == "" {
			eff.Spec.Labels[i].Action = rules.ActionDeny
		}
	}
	eff.Spec.NetworkPolicies = append([]rules.NetworkPolicyRule(nil), std.Spec.NetworkPolicies...)
	listed := map[string]bool{}
	for i := range eff.Spec.NetworkPolicies {
		listed[eff.Spec.NetworkPolicies[i].ID] = true
		if eff.Spec.NetworkPolicies[i].Action == "" {
			eff.Spec.NetworkPolicies[i].Action = rules.ActionDeny
		}
	}
	for _, id := range rules.NetworkPolicyRuleIDs {
		if !listed[id] {
			eff.Spec.NetworkPolicies = append(eff.Spec.NetworkPolicies, rules.NetworkPolicyRule{ID: id, Action: rules.ActionDeny})
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&eff); err != nil {
		return nil, fmt.Errorf("render standard: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render standard: %w", err)
	}
	return buf.Bytes(), nil
}

func newRulesCheckCommand() *cobra.Command {
	var standard, rulesDir string
	cmd := &cobra.Command{
		Use:   "check --standard FILE [--rules DIR]",
		Short: "Validate a labeling standard file and a directory of custom Gatekeeper rules",
		Long: `Validate a labeling standard file and, with --rules, a directory of custom
Gatekeeper rules (*.yaml, *.yml: ConstraintTemplates in Rego or CEL, constraints,
ExpansionTemplates), compiling them as the webhook would. Every problem is
printed with its file and line; the exit code is 2 if there is any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if standard == "" && rulesDir == "" {
				return rulesInputError{fmt.Errorf("check: name a --standard FILE, a --rules DIR or both")}
			}
			out := cmd.OutOrStdout()
			if standard != "" {
				std, err := rules.Load(standard)
				if err != nil {
					return rulesInputError{err}
				}
				if _, err := gatekeeper.Export(std); err != nil {
					return rulesInputError{err}
				}
				fmt.Fprintf(out, "%s: standard %s@%s, %d label rules: ok\n",
					standard, std.Metadata.Name, std.Metadata.Version, len(std.Spec.Labels))
			}
			if rulesDir != "" {
				cr, err := gatekeeper.LoadCustomRules(cmd.Context(), rulesDir)
				if err != nil {
					return rulesInputError{err}
				}
				fmt.Fprintf(out, "%s: %d constraints: ok\n", rulesDir, cr.Len())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&standard, "standard", "", "labeling standard file to validate")
	cmd.Flags().StringVar(&rulesDir, "rules", "", "directory of custom Gatekeeper rules to validate")
	return cmd
}
