package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/enforcer"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// TestDemoTour runs `make demo`'s tour non-interactively against the real
// control plane and the real binary: the README's first command stays true.
func TestDemoTour(t *testing.T) {
	assets, reason := testenv.Assets()
	if reason != "" {
		testenv.SkipOrFail(t, "%s", reason)
	}
	bin := buildPackage(t, t.TempDir(), "github.com/palisade-dev/palisade/cmd/palisade")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	var net netResult
	start := time.Now()
	err := run(ctx, demoOptions{assets: assets, palisade: bin, out: &out, net: &net})
	t.Logf("tour took %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"[ns-owner] namespace payments: missing label owner",
		"[pod-tier] pod payments/checkout: missing label tier",
		"[pod-tier] deployment payments/ledger (pod template)",
		"palisade-default-deny",
		"[netpol-managed-readonly]",
		"[netpol-regulated-all-namespaces]",
		"Warning: [netpol-non-identity-selector]",
		"chain intact",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if testing.Verbose() {
		os.Stdout.Write(out.Bytes())
	}
	if net.Skipped != "" {
		if !strings.Contains(out.String(), "Skipping the enforcer part of the tour: "+net.Skipped) {
			t.Errorf("the enforcer part was skipped without saying why")
		}
		testenv.SkipOrFail(t, "the enforcer part of the tour: %s", net.Skipped)
	}
	checkEnforcerTour(t, &net, out.String())
}

// checkEnforcerTour asserts what the datapath did: a default-denied
// connection dropped and recorded, an allow-listed one answered, audit
// mode passing and recording a would-drop.
func checkEnforcerTour(t *testing.T, net *netResult, out string) {
	t.Helper()
	if !net.DeniedDropped {
		t.Error("the default-denied connection was not shown dropped")
	}
	if want := "hello from payments/ledger on port 8080\n"; net.AllowedAnswer != want {
		t.Errorf("allow-listed connection answered %q, want %q", net.AllowedAnswer, want)
	}
	if !net.StillDropped {
		t.Error("the port outside the allow-list was not shown dropped")
	}
	if want := "hello from payments/ledger on port 9090\n"; net.AuditAnswer != want {
		t.Errorf("audit-mode connection answered %q, want %q", net.AuditAnswer, want)
	}
	if !net.QuarantineDropped || !net.QuarantineRecord.Quarantined || !strings.Contains(net.QuarantineRecord.Reason, "quarantined") {
		t.Errorf("the new pod's first connection was not shown dropped in quarantine: record %+v", net.QuarantineRecord)
	}
	if want := "hello from payments/ledger on port 8080\n"; net.ReleasedAnswer != want {
		t.Errorf("released pod's connection answered %q, want %q", net.ReleasedAnswer, want)
	}
	for _, tc := range []struct {
		what    string
		rec     enforcer.FlowRecord
		verdict string
		port    uint16
		reason  string
	}{
		{"drop record", net.DropRecord, "dropped", 8080, "egress of payments/web isolated by payments/palisade-allow-dns, payments/palisade-default-deny; no rule allows"},
		{"audit record", net.AuditRecord, "audit", 9090, "(audit mode: passed, reported)"},
	} {
		r := tc.rec
		if r.Verdict != tc.verdict || r.Node != "node1" || r.Protocol != "TCP" || r.Source.Pod != "web" || r.Destination.Pod != "ledger" ||
			r.Destination.Namespace != "payments" || r.Destination.Port != tc.port || !strings.Contains(r.Reason, tc.reason) {
			t.Errorf("%s = %+v, want verdict %s from payments/web to payments/ledger:%d on node1, reason containing %q", tc.what, r, tc.verdict, tc.port, tc.reason)
		}
		if !strings.Contains(out, `"verdict":"`+tc.verdict+`"`) {
			t.Errorf("the output does not show the %s's JSON line", tc.what)
		}
	}
	for _, want := range []string{
		"$ ip netns exec ", " curl -sS -m 2 http://10.244.1.11:8080/",
		"(no answer within 1s: the packets were dropped)",
		"$ palisade enforcer --kubeconfig ",
		"kubectl annotate namespace payments palisade.dev/enforcement=audit",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
