package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
	"github.com/palisade-dev/palisade/webhook"
)

const serviceAccount = testenv.WebhookServiceAccount

// demoOptions says where the parts are and whether to wait for Ctrl-C.
type demoOptions struct {
	assets      string // KUBEBUILDER_ASSETS
	palisade    string // the palisade binary
	interactive bool
	out         io.Writer
	// net receives what the enforcer part saw; nil discards it.
	net *netResult
}

func demoOptionsFromEnv() demoOptions {
	bin := os.Getenv("PALISADE_BIN")
	if bin == "" {
		bin = "bin/palisade"
	}
	return demoOptions{assets: os.Getenv("KUBEBUILDER_ASSETS"), palisade: bin, interactive: os.Getenv("DEMO_NONINTERACTIVE") == "", out: os.Stdout}
}

func run(ctx context.Context, o demoOptions) error {
	if o.assets == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run `make demo`")
	}
	dir, err := os.MkdirTemp("", "palisade-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// envtest logs through controller-runtime's logger, which otherwise
	// prints a stack trace complaining that it was never set.
	ctrllog.SetLogger(logr.Discard())
	say(o.out, "Starting a local control plane (kube-apiserver + etcd built from source)")
	env := &envtest.Environment{BinaryAssetsDirectory: o.assets}
	// The API server presents a client certificate to the webhook, which
	// judges nothing else (README: Admission: who may call the webhook).
	clientAuth, err := testenv.ConfigureWebhookClientAuth(env, dir)
	if err != nil {
		return err
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer env.Stop()
	// Undone before the control plane stops: the enforcer, then the pods'
	// and node's namespaces, then the bpf filesystem.
	var cleanup cleanups
	defer cleanup.run()
	admin, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	if err := installRBAC(ctx, admin); err != nil {
		return err
	}
	kubeconfigs := map[string]string{}
	for _, u := range []envtest.User{{Name: "admin", Groups: []string{"system:masters"}}, {Name: serviceAccount}, {Name: "alice", Groups: []string{"developers"}}} {
		au, err := env.AddUser(u, cfg)
		if err != nil {
			return err
		}
		kc, err := au.KubeConfig()
		if err != nil {
			return err
		}
		path := filepath.Join(dir, nameOf(u.Name)+".kubeconfig")
		if err := os.WriteFile(path, kc, 0o600); err != nil {
			return err
		}
		kubeconfigs[nameOf(u.Name)] = path
	}

	// Serving certificate and configurations, as the chart's
	// self-managed mode would make them.
	wio := &env.WebhookInstallOptions
	mutating, validating := webhook.WebhookConfigurations(webhook.ConfigurationOptions{})
	for i := range mutating.Webhooks {
		trimPath(mutating.Webhooks[i].ClientConfig.Service.Path)
	}
	for i := range validating.Webhooks {
		trimPath(validating.Webhooks[i].ClientConfig.Service.Path)
	}
	wio.MutatingWebhooks = append(wio.MutatingWebhooks, mutating)
	wio.ValidatingWebhooks = append(wio.ValidatingWebhooks, validating)
	if err := wio.ModifyWebhookDefinitions(); err != nil {
		return err
	}

	say(o.out, "Starting `palisade webhook` as its service account")
	auditFile := filepath.Join(dir, "decisions.jsonl")
	wh := exec.CommandContext(ctx, o.palisade, "webhook",
		"--kubeconfig", kubeconfigs["webhook"],
		"--cert-mode", "files", "--cert-dir", wio.LocalServingCertDir,
		"--host", wio.LocalServingHost, "--port", fmt.Sprint(wio.LocalServingPort),
		"--client-ca-file", clientAuth.CAFile, "--client-allowed-names", clientAuth.ClientName,
		"--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "0",
		"--audit-file", auditFile, "--audit-stdout=false")
	logFile, err := os.Create(filepath.Join(dir, "webhook.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	wh.Stdout, wh.Stderr = logFile, logFile
	wh.Cancel = func() error { return wh.Process.Signal(os.Interrupt) }
	wh.WaitDelay = 5 * time.Second
	if err := wh.Start(); err != nil {
		return fmt.Errorf("start palisade webhook: %w", err)
	}
	defer func() {
		_ = wh.Cancel()
		_ = wh.Wait()
	}()
	if err := waitPort(ctx, net.JoinHostPort(wio.LocalServingHost, fmt.Sprint(wio.LocalServingPort))); err != nil {
		return fmt.Errorf("palisade webhook did not come up (log: %s): %w", logFile.Name(), err)
	}
	if err := wio.Install(cfg); err != nil {
		return fmt.Errorf("install webhook configurations: %w", err)
	}

	k := kubectl{path: filepath.Join(o.assets, "kubectl"), kubeconfigs: kubeconfigs, out: o.out}
	if err := tour(ctx, k, auditFile, o.palisade); err != nil {
		return err
	}
	res := o.net
	if res == nil {
		res = &netResult{}
	}
	var w *netWorld
	if res.Skipped = enforcerUnavailable(); res.Skipped != "" {
		fmt.Fprintf(o.out, "\n\033[1m== Skipping the enforcer part of the tour: %s\033[0m\n", res.Skipped)
	} else {
		if w, err = startNetwork(ctx, o, k, admin, env, cfg, dir, &cleanup); err != nil {
			return err
		}
		if err := netTour(ctx, o.out, k, w, res); err != nil {
			return err
		}
	}
	if !o.interactive {
		return nil
	}
	say(o.out, "Palisade is running. Try your own commands, e.g.:")
	fmt.Fprintf(o.out, "  export KUBECONFIG=%s   # a developer; %s is cluster-admin\n", kubeconfigs["alice"], kubeconfigs["admin"])
	fmt.Fprintf(o.out, "  %s create namespace demo   # denied: no owner/env/data-classification labels\n", k.path)
	fmt.Fprintf(o.out, "  decision records: %s (verify: %s audit verify %s)\n", auditFile, o.palisade, auditFile)
	if w != nil {
		printProbeHelp(o.out, w, dir)
	}
	fmt.Fprintln(o.out, "Press Ctrl-C to stop and clean up.")
	<-ctx.Done()
	say(o.out, "Stopping and cleaning up")
	return nil
}

// cleanups undoes what the demo made, last first, on every way out:
// success, failure and Ctrl-C.
type cleanups []func()

func (c *cleanups) push(f func()) { *c = append(*c, f) }

func (c *cleanups) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

func nameOf(user string) string {
	if user == serviceAccount {
		return "webhook"
	}
	return user
}

func trimPath(p *string) {
	if p != nil && len(*p) > 0 && (*p)[0] == '/' {
		*p = (*p)[1:]
	}
}

func waitPort(ctx context.Context, addr string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("nothing listening on %s after 60s", addr)
}

func installRBAC(ctx context.Context, c client.Client) error {
	for _, o := range testenv.RBAC() {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

func say(w io.Writer, s string) { fmt.Fprintf(w, "\n\033[1m== %s\033[0m\n", s) }
