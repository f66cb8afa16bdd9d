package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

type kubectl struct {
	path        string
	kubeconfigs map[string]string
	out         io.Writer
}

// step is one command of the tour and the exit code Palisade must cause.
type step struct {
	say      string
	user     string
	args     []string
	manifest string
	exit     int
}

// run shows the command and its output; a different exit code than the
// tour expects stops the demo, so it never shows what did not happen.
func (k kubectl) run(ctx context.Context, s step) error {
	fmt.Fprintf(k.out, "\n\033[1m== %s\033[0m\n$ kubectl %s   # as %s\n", s.say, shellJoin(s.args), s.user)
	if s.manifest != "" {
		fmt.Fprintf(k.out, "%s", indent(strings.TrimPrefix(s.manifest, "\n")))
	}
	cmd := exec.CommandContext(ctx, k.path, append([]string{"--kubeconfig", k.kubeconfigs[s.user]}, s.args...)...)
	cmd.Stdin = strings.NewReader(s.manifest)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	k.out.Write(buf.Bytes())
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return err
	}
	if code != s.exit {
		return fmt.Errorf("kubectl %s exited %d, the tour expected %d", strings.Join(s.args, " "), code, s.exit)
	}
	return nil
}

// shellJoin quotes the arguments a shell would split or expand, so a
// printed command can be pasted as it is.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r))
		}) {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(quoted, " ")
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    | " + l + "\n")
	}
	return b.String()
}

func tour(ctx context.Context, k kubectl, auditFile, palisade string) error {
	steps := []step{
		{say: "A namespace without the standard's labels is denied", user: "alice", exit: 1,
			args: []string{"create", "namespace", "payments"}},
		{say: "A labelled namespace is admitted; its data classification picks its baseline profile", user: "alice",
			args: []string{"create", "-f", "-"}, manifest: `
apiVersion: v1
kind: Namespace
metadata:
  name: payments
  labels: {owner: team-payments, env: prod, data-classification: pci}
`},
		{say: "A pod missing its identity labels is denied, with the fix", user: "alice", exit: 1,
			args: []string{"run", "checkout", "-n", "payments", "--image=registry.example/checkout:1", "--labels=app=checkout"}},
		{say: "A Deployment with a bad pod template fails at apply, not later in its ReplicaSet", user: "alice", exit: 1,
			args: []string{"apply", "-f", "-"}, manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ledger, namespace: payments}
spec:
  selector: {matchLabels: {app: ledger}}
  template:
    metadata: {labels: {app: ledger, tier: db, env: dev}}
    spec: {containers: [{name: ledger, image: registry.example/ledger:1}]}
`},
		{say: "A compliant pod is admitted and inherits env from its namespace", user: "alice",
			args: []string{"run", "checkout", "-n", "payments", "--image=registry.example/checkout:1", "--labels=app=checkout,tier=backend"}},
		{say: "Its labels: env=prod was filled in by Palisade", user: "alice",
			args: []string{"get", "pod", "checkout", "-n", "payments", "--show-labels"}},
		{say: "The namespace's baseline: default-deny and DNS (pci: nothing more)", user: "alice",
			args: []string{"get", "networkpolicies", "-n", "payments", "-L", "app.kubernetes.io/managed-by"}},
		{say: "A developer cannot delete the baseline", user: "alice", exit: 1,
			args: []string{"delete", "networkpolicy", "palisade-default-deny", "-n", "payments"}},
		{say: "Allowing ingress from every namespace is denied in a pci namespace", user: "alice", exit: 1,
			args: []string{"apply", "-f", "-"}, manifest: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-anywhere, namespace: payments}
spec:
  podSelector: {matchLabels: {app: checkout}}
  ingress: [{from: [{namespaceSelector: {}}]}]
`},
		{say: "A policy selecting on a non-identity label is admitted with a warning", user: "alice",
			args: []string{"apply", "-f", "-"}, manifest: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: checkout-from-frontend, namespace: payments}
spec:
  podSelector: {matchLabels: {app: checkout, version: v2}}
  ingress: [{from: [{podSelector: {matchLabels: {tier: frontend}}}], ports: [{port: 8080}]}]
`},
		{say: "The denials, as Events in the namespace", user: "admin",
			args: []string{"get", "events.events.k8s.io", "-n", "payments", "--field-selector", "reason=AdmissionDenied", "-o", "custom-columns=OBJECT:.regarding.name,NOTE:.note"}},
	}
	for _, s := range steps {
		if err := k.run(ctx, s); err != nil {
			return err
		}
	}
	// Events are written asynchronously; records synchronously.
	time.Sleep(200 * time.Millisecond)
	fmt.Fprintf(k.out, "\n\033[1m== Every decision is a hash-chained record\033[0m\n$ palisade audit verify %s\n", auditFile)
	cmd := exec.CommandContext(ctx, palisade, "audit", "show", auditFile)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	verify := exec.CommandContext(ctx, palisade, "audit", "verify", auditFile)
	verify.Stdout, verify.Stderr = k.out, k.out
	if err := verify.Run(); err != nil {
		return fmt.Errorf("verify decision records: %w", err)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("summarise decision records: %w: %s", err, buf.String())
	}
	fmt.Fprintf(k.out, "$ palisade audit show %s\n%s", auditFile, buf.String())
	return nil
}
