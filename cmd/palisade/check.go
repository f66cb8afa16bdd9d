package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/palisade-dev/palisade/enforcer/check"
	"github.com/palisade-dev/palisade/enforcer/policy"
)

// checkConfig is everything `palisade check` takes from its flags.
type checkConfig struct {
	files   []string
	from    string
	to      string
	ports   string
	engine  string
	output  string
	expect  string
	explain bool
}

// reachabilityMismatch: exit 1, the manifests were read and contradict the
// expectation file.
type reachabilityMismatch struct{ err error }

func (e reachabilityMismatch) Error() string { return e.err.Error() }
func (e reachabilityMismatch) Unwrap() error { return e.err }
func (e reachabilityMismatch) ExitCode() int { return 1 }

func newCheckCommand() *cobra.Command {
	cfg := checkConfig{}
	cmd := &cobra.Command{
		Use:   "check -f PATH [-f PATH...]",
		Short: "Compute which pod can reach which from manifests, offline",
		Long: `Reads Namespaces, Pods (with status.podIP) and NetworkPolicies from YAML or JSON
files and directories, compiles them as the enforcer does, and judges the first
packet of a connection for every ordered pod pair and port: by the Go model
(--engine model) or by the real BPF programs in the kernel (--engine bpf, root).

Default ports: every containerPort and every port the policies name (named
ports resolved, both ends of endPort ranges).

Exit 0: done (and every --expect line holds); 1: some --expect line does not
hold (each is named); 2: bad flags or manifests, or no privilege for --engine bpf.`,
		Example: `  palisade check -f manifests/
  palisade check -f ns.yaml -f pods.yaml -f policies/ --ports 80/TCP,53/UDP -o json
  palisade check -f manifests/ --expect reachability.yaml
  palisade check -f manifests/ --explain --from shop/web --to db/postgres --ports 5432/TCP
  sudo palisade check -f manifests/ --engine bpf`,
		// As under the root command: errors are printed once, by execute.
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected arguments %q: pass manifests with -f", args)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f := cmd.Flags()
	f.StringArrayVarP(&cfg.files, "filename", "f", nil, "manifest file or directory (repeatable)")
	f.StringVar(&cfg.from, "from", "", "only connections from this pod (namespace/name)")
	f.StringVar(&cfg.to, "to", "", "only connections to this pod (namespace/name)")
	f.StringVar(&cfg.ports, "ports", "", "ports to probe, e.g. 80/TCP,53/UDP (default: those the manifests name)")
	f.StringVar(&cfg.engine, "engine", string(check.EngineModel), "model (Go) or bpf (the kernel programs; needs root)")
	f.StringVarP(&cfg.output, "output", "o", "table", "table or json")
	f.StringVar(&cfg.expect, "expect", "", "reachability file (YAML or JSON, the shape of -o json) to assert")
	f.BoolVar(&cfg.explain, "explain", false, "explain each verdict: identities, isolating policies, allowing rule (needs --from and --to)")
	return cmd
}

func runCheck(stdout, stderr io.Writer, cfg checkConfig) error {
	if err := cfg.validate(); err != nil {
		return usageError{err}
	}
	cluster, err := check.Load(cfg.files...)
	if err != nil {
		return usageError{err}
	}
	for _, doc := range cluster.Ignored {
		fmt.Fprintf(stderr, "palisade check: ignored %s (only Namespaces, Pods and NetworkPolicies count)\n", doc)
	}
	from, to := cluster.Pods, cluster.Pods
	if cfg.from != "" {
		p, err := cluster.Pod(cfg.from)
		if err != nil {
			return usageError{fmt.Errorf("--from: %w", err)}
		}
		from = []policy.PodRef{p}
	}
	if cfg.to != "" {
		p, err := cluster.Pod(cfg.to)
		if err != nil {
			return usageError{fmt.Errorf("--to: %w", err)}
		}
		to = []policy.PodRef{p}
	}
	if cfg.from != "" && cfg.from == cfg.to {
		return usageError{fmt.Errorf("--from and --to are both %s: a pod's traffic to itself never leaves it", cfg.from)}
	}
	ports := cluster.Ports
	if cfg.ports != "" {
		if ports, err = check.ParsePorts(cfg.ports); err != nil {
			return usageError{fmt.Errorf("--ports: %w", err)}
		}
	}
	var want []check.Expectation
	if cfg.expect != "" {
		if want, err = check.ReadExpectations(cluster, cfg.expect); err != nil {
			return usageError{fmt.Errorf("--expect: %w", err)}
		}
	}
	if len(ports) == 0 && len(want) == 0 {
		return usageError{errors.New("no ports to probe: neither the policies nor the pods' containerPorts name one; pass --ports")}
	}
	probes := check.WithExpectations(check.Matrix(from, to, ports), want)

	engine, err := check.NewEngine(check.EngineName(cfg.engine), cluster.State)
	if err != nil {
		if errors.Is(err, check.ErrPrivilege) {
			return usageError{fmt.Errorf("--engine bpf: %w; run as root, or use --engine model", err)}
		}
		return err
	}
	defer engine.Close()
	results, err := engine.Judge(probes)
	if err != nil {
		return err
	}

	switch {
	case cfg.explain:
		for i, r := range results {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			if err := check.WriteExplanation(stdout, cluster.State, r); err != nil {
				return err
			}
		}
	case cfg.output == "json":
		err = check.WriteJSON(stdout, results)
	default:
		err = check.WriteTable(stdout, results)
	}
	if err != nil {
		return err
	}

	if cfg.expect == "" {
		return nil
	}
	mismatches, err := check.Compare(want, results)
	if err != nil {
		return err
	}
	if len(mismatches) > 0 {
		lines := make([]string, len(mismatches))
		for i, m := range mismatches {
			lines[i] = "  " + m.String()
		}
		return reachabilityMismatch{fmt.Errorf("reachability differs from %s in %d of %d expectations (engine %s):\n%s",
			cfg.expect, len(mismatches), len(want), cfg.engine, strings.Join(lines, "\n"))}
	}
	fmt.Fprintf(stderr, "palisade check: all %d expectations in %s hold (engine %s)\n", len(want), cfg.expect, cfg.engine)
	return nil
}

func (cfg *checkConfig) validate() error {
	if len(cfg.files) == 0 {
		return errors.New("-f: required: pass manifest files or directories")
	}
	switch check.EngineName(cfg.engine) {
	case check.EngineModel, check.EngineBPF:
	default:
		return fmt.Errorf("--engine %q: want model or bpf", cfg.engine)
	}
	switch cfg.output {
	case "table", "json":
	default:
		return fmt.Errorf("-o %q: want table or json", cfg.output)
	}
	if cfg.explain {
		if cfg.from == "" || cfg.to == "" {
			return errors.New("--explain: needs --from and --to")
		}
		if cfg.output != "table" {
			return errors.New("--explain: prints text; leave out -o")
		}
	}
	return nil
}
