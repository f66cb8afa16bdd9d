package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
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
			name: "defaults", args: []string{"--client-ca-file=/ca.crt"},
			want: withCertDefaults(webhookConfig{auditStdout: true, certDir: "/tmp/k8s-webhook-server/serving-certs", port: 9443, metricsAddr: ":8080", healthAddr: ":8081",
				namespace: "palisade-system", serviceAccount: "system:serviceaccount:palisade-system:palisade-webhook"}),
		},
		{
			name: "namespace from the downward API", env: "sec", args: []string{"--client-ca-file=/ca.crt"},
			want: withCertDefaults(webhookConfig{auditStdout: true, certDir: "/tmp/k8s-webhook-server/serving-certs", port: 9443, metricsAddr: ":8080", healthAddr: ":8081",
				namespace: "sec", serviceAccount: "system:serviceaccount:sec:palisade-webhook"}),
		},
		{
			name: "everything set",
			args: []string{"--kubeconfig=k", "--standard=s.yaml", "--rules=r", "--audit-file=a.jsonl", "--audit-stdout=false", "--audit-fsync", "--cert-dir=/c", "--host=127.0.0.1", "--port=8443",
				"--metrics-bind-address=0", "--health-probe-bind-address=:9", "--namespace=p", "--service-account=system:serviceaccount:p:w",
				"--cert-mode=cert-manager", "--cert-secret=edge-palisade-webhook-tls", "--service-name=edge-palisade-webhook",
				"--mutating-configuration=m.example.com", "--validating-configuration=v",
				"--client-ca-file=/etc/ca.crt", "--client-allowed-names=kube-apiserver,apiserver.example", "--max-concurrent-requests=8", "--read-timeout=3s",
				"--metrics-cert-dir=/m"},
			want: webhookConfig{kubeconfig: "k", standard: "s.yaml", rulesDir: "r", auditFile: "a.jsonl", auditFsync: true, certDir: "/c", host: "127.0.0.1", port: 8443,
				metricsAddr: "0", healthAddr: ":9", namespace: "p", serviceAccount: "system:serviceaccount:p:w",
				certMode: "cert-manager", certSecret: "edge-palisade-webhook-tls", serviceName: "edge-palisade-webhook", mutatingCfg: "m.example.com", validatingCfg: "v",
				clientAuth: "required", clientCAFile: "/etc/ca.crt", clientNames: []string{"kube-apiserver", "apiserver.example"}, maxConcurrent: 8, readTimeout: 3 * time.Second,
				metricsCertDir: "/m"},
		},
		{name: "secret mode", args: []string{"--cert-mode=secret", "--cert-secret=byo-serving", "--client-ca-file=/ca.crt"},
			want: withCertDefaults(webhookConfig{auditStdout: true, certDir: "/tmp/k8s-webhook-server/serving-certs", port: 9443, metricsAddr: ":8080", healthAddr: ":8081",
				namespace: "palisade-system", serviceAccount: "system:serviceaccount:palisade-system:palisade-webhook", certMode: "secret", certSecret: "byo-serving"})},
		{name: "files mode", args: []string{"--cert-mode=files", "--client-auth=none"},
			want: withCertDefaults(webhookConfig{auditStdout: true, certDir: "/tmp/k8s-webhook-server/serving-certs", port: 9443, metricsAddr: ":8080", healthAddr: ":8081",
				namespace: "palisade-system", serviceAccount: "system:serviceaccount:palisade-system:palisade-webhook", certMode: "files", clientAuth: "none"})},
		{name: "client CA required by default", wantErr: "--client-ca-file: required with --client-auth=required"},
		{name: "unknown client auth", args: []string{"--client-auth=optional"}, wantErr: `invalid --client-auth: "optional" is not one of required, none`},
		{name: "none with a CA", args: []string{"--client-auth=none", "--client-ca-file=/ca.crt"}, wantErr: "--client-auth=none: --client-ca-file and --client-allowed-names would not be used"},
		{name: "empty allowed name", args: []string{"--client-ca-file=/ca.crt", "--client-allowed-names=a,,b"}, wantErr: "invalid --client-allowed-names: an empty name"},
		{name: "no concurrency", args: []string{"--client-ca-file=/ca.crt", "--max-concurrent-requests=0"}, wantErr: "invalid --max-concurrent-requests 0"},
		{name: "no read time", args: []string{"--client-ca-file=/ca.crt", "--read-timeout=0s"}, wantErr: "invalid --read-timeout 0s"},
		{name: "metrics address without port", args: []string{"--client-ca-file=/ca.crt", "--metrics-bind-address=localhost"}, wantErr: `invalid --metrics-bind-address "localhost"`},
		{name: "unknown cert mode", args: []string{"--cert-mode=selfmanaged"}, wantErr: `invalid --cert-mode: "selfmanaged" is not one of self-managed, cert-manager, secret, files`},
		{name: "empty cert mode", args: []string{"--cert-mode="}, wantErr: `invalid --cert-mode: "" is not one of`},
		{name: "secret name with capitals", args: []string{"--cert-secret=My-TLS"}, wantErr: `invalid --cert-secret: "My-TLS": a lowercase RFC 1123 subdomain`},
		{name: "empty secret name", args: []string{"--cert-secret="}, wantErr: "invalid --cert-secret: empty"},
		{name: "service name with a dot", args: []string{"--service-name=palisade.webhook"}, wantErr: `invalid --service-name: "palisade.webhook": a DNS-1035 label`},
		{name: "service name starting with a digit", args: []string{"--service-name=1webhook"}, wantErr: `invalid --service-name: "1webhook"`},
		{name: "mutating configuration name", args: []string{"--mutating-configuration=Palisade_Mutate"}, wantErr: `invalid --mutating-configuration: "Palisade_Mutate"`},
		{name: "empty validating configuration", args: []string{"--validating-configuration="}, wantErr: "invalid --validating-configuration: empty"},
		{name: "names are checked in every mode", args: []string{"--cert-mode=files", "--validating-configuration=-x"}, wantErr: `invalid --validating-configuration: "-x"`},
		{name: "namespace not a label", args: []string{"--namespace=palisade.system"}, wantErr: `invalid --namespace: "palisade.system"`},
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
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config = %+v\nwant     %+v", got, tc.want)
			}
		})
	}
}

// withCertDefaults fills the certificate flags' defaults where c leaves
// them empty: the chart's for a release named "palisade".
func withCertDefaults(c webhookConfig) webhookConfig {
	for _, f := range []struct {
		field *string
		def   string
	}{
		{&c.certMode, "self-managed"}, {&c.certSecret, "palisade-webhook-tls"}, {&c.serviceName, "palisade-webhook"},
		{&c.mutatingCfg, "palisade-mutate"}, {&c.validatingCfg, "palisade-validate"},
	} {
		if *f.field == "" {
			*f.field = f.def
		}
	}
	if c.clientAuth == "" {
		c.clientAuth, c.clientCAFile = "required", "/ca.crt"
	}
	if c.maxConcurrent == 0 {
		c.maxConcurrent, c.readTimeout = 64, 10*time.Second
	}
	return c
}

// TestWebhookBadCertFlagsExitTwo: a bad certificate flag is a usage error
// (exit 2) naming the flag, before any cluster is needed.
func TestWebhookBadCertFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"--cert-mode=vault"},
		{"--cert-secret=UPPER"},
		{"--service-name=a.b"},
		{"--mutating-configuration="},
	} {
		var errOut bytes.Buffer
		flag, _, _ := strings.Cut(args[0], "=")
		code := execute(context.Background(), newRootCommand(), append([]string{"webhook", "--kubeconfig", "/nonexistent"}, args...), &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "palisade: invalid "+flag+":") {
			t.Errorf("%v: exit %d, stderr %q: want 2 and \"invalid %s:\"", args, code, errOut.String(), flag)
		}
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
	code := execute(context.Background(), newRootCommand(), []string{"webhook", "--client-auth=none", "--standard", path, "--kubeconfig", "/nonexistent"}, &errOut)
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
	code := execute(context.Background(), newRootCommand(), []string{"webhook", "--client-auth=none", "--rules", dir, "--kubeconfig", "/nonexistent"}, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "broken.yaml") {
		t.Fatalf("exit %d, stderr %q: want 2 naming broken.yaml", code, errOut.String())
	}
}

// TestWebhookClientCAProblemsExitTwo: a client CA that is missing or holds
// no certificate stops the process with exit 2 naming the flag, before it
// needs a cluster; so does leaving it out while client auth is required.
func TestWebhookClientCAProblemsExitTwo(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--client-ca-file: required with --client-auth=required"},
		{[]string{"--client-ca-file", "/nonexistent/ca.crt"}, "--client-ca-file: open /nonexistent/ca.crt"},
		{[]string{"--client-ca-file", empty}, "--client-ca-file " + empty + ": no PEM certificate"},
	} {
		var errOut bytes.Buffer
		code := execute(context.Background(), newRootCommand(), append([]string{"webhook", "--kubeconfig", "/nonexistent"}, tc.args...), &errOut)
		if code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q: want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
