package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWebhookFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     string // POD_NAMESPACE
		want    webhookConfig
		wantErr string
	}{
		{
			name: "defaults",
			want: webhookConfig{auditStdout: true, certDir: "/tmp/k8s-webhook-server/serving-certs", port: 9443, metricsAddr: ":8080", healthAddr: ":8081",
				namespace: "palisade-system", serviceAccount: "system:serviceaccount:palisade-system:palisade-webhook"},
		},
		{
			name: "namespace from the downward API", env: "sec",
			want: webhookConfig{auditStdout: true, certDir: "/tmp/k8s-webhook-server/serving-certs", port: 9443, metricsAddr: ":8080", healthAddr: ":8081",
				namespace: "sec", serviceAccount: "system:serviceaccount:sec:palisade-webhook"},
		},
		{
			name: "everything set",
			args: []string{"--kubeconfig=k", "--standard=s.yaml", "--rules=r", "--audit-file=a.jsonl", "--audit-stdout=false", "--audit-fsync", "--cert-dir=/c", "--host=127.0.0.1", "--port=8443",
				"--metrics-bind-address=0", "--health-probe-bind-address=:9", "--namespace=p", "--service-account=system:serviceaccount:p:w"},
			want: webhookConfig{kubeconfig: "k", standard: "s.yaml", rulesDir: "r", auditFile: "a.jsonl", auditFsync: true, certDir: "/c", host: "127.0.0.1", port: 8443,
				metricsAddr: "0", healthAddr: ":9", namespace: "p", serviceAccount: "system:serviceaccount:p:w"},
		},
		{name: "bad port", args: []string{"--port=70000"}, wantErr: "--port 70000: want 1-65535"},
		{name: "not a number", args: []string{"--port=x"}, wantErr: `invalid argument "x" for "--port"`},
		{name: "no args", args: []string{"extra"}, wantErr: `unknown command "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POD_NAMESPACE", tc.env)
			var got webhookConfig
			cmd := newWebhookCommand(func(_ context.Context, c webhookConfig) error { got = c; return nil })
			cmd.SetArgs(tc.args)
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.ExecuteContext(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("config = %+v\nwant     %+v", got, tc.want)
			}
		})
	}
}

// TestWebhookRejectsBadStandardBeforeServing: the process stops with exit
// 2 naming the file and line, before it needs a cluster.
func TestWebhookRejectsBadStandardBeforeServing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "standard.yaml")
	if err := os.WriteFile(path, []byte("apiVersion: palisade.dev/v1alpha1\nkind: LabelingStandard\nmetadata: {name: x, version: '1'}\nspec:\n  identityLabels: [app]\n  labelz: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	code := execute(context.Background(), newRootCommand(), []string{"webhook", "--standard", path, "--kubeconfig", "/nonexistent"}, &errOut)
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, errOut.String())
	}
	if want := path + ":6: "; !strings.Contains(errOut.String(), want) || !strings.Contains(errOut.String(), `unknown field "labelz"`) {
		t.Errorf("stderr %q does not name %q and the unknown field", errOut.String(), want)
	}
}

func TestWebhookRejectsBadRulesDirBeforeServing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: x}\nspec: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	code := execute(context.Background(), newRootCommand(), []string{"webhook", "--rules", dir, "--kubeconfig", "/nonexistent"}, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "broken.yaml") {
		t.Fatalf("exit %d, stderr %q: want 2 naming broken.yaml", code, errOut.String())
	}
}
