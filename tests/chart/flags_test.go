package chart_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
	"github.com/palisade-dev/palisade/webhook"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binOut  []byte
)

// palisadeBinary builds cmd/palisade the way `make build` does (same flags,
// so the build cache is shared).
func palisadeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "palisade-chart-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "palisade")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./cmd/palisade")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		binOut, binErr = cmd.CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("build palisade: %v\n%s", binErr, binOut)
	}
	return binPath
}

var flagInHelp = regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z0-9-]+)`)

// TestArgsAreFlagsOfTheBinary: every flag the chart passes to `palisade
// webhook` and `palisade enforcer` is one the binary defines (read from its
// --help), so an install never crash-loops on an unknown flag.
func TestArgsAreFlagsOfTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := palisadeBinary(t)
	r := mustRender(t, defaultRelease, map[string]any{
		"customRules": map[string]any{"a.yaml": "x: y\n"},
		"enforcer": map[string]any{"pinDir": "/sys/fs/bpf/palisade/test", "uplinkInterfaces": []any{"eth0"}, "maps": map[string]any{
			"ipIdentity": 1, "endpoints": 2, "endpointIPs": 3, "policy": 4, "policyRanges": 5, "serviceCIDRs": 6, "sourceCIDRs": 8, "conntrack": 7}, "conntrackPerEndpoint": 7},
	})
	dep := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))
	ds := typed[appsv1.DaemonSet](t, r.oneComponent(t, "DaemonSet", "enforcer"))
	for _, c := range []struct {
		args []string
	}{{dep.Spec.Template.Spec.Containers[0].Args}, {ds.Spec.Template.Spec.Containers[0].Args}} {
		sub := c.args[0]
		out, err := exec.Command(bin, sub, "--help").CombinedOutput()
		if err != nil && sub == "enforcer" && strings.Contains(string(out), `unknown command "enforcer"`) {
			// The enforcer work registers the subcommand; until then
			// there is nothing to check its args against.
			t.Logf("palisade has no enforcer subcommand yet; its args are unchecked: %v", c.args)
			continue
		}
		if err != nil {
			t.Fatalf("palisade %s --help: %v\n%s", sub, err, out)
		}
		var known []string
		for _, m := range flagInHelp.FindAllStringSubmatch(string(out), -1) {
			known = append(known, m[1])
		}
		for _, a := range c.args[1:] {
			name, _, _ := strings.Cut(a, "=")
			switch {
			case slices.Contains(known, name):
			default:
				t.Errorf("the chart passes %s to `palisade %s`, which has no such flag (flags: %v)", a, sub, known)
			}
		}
	}
}

// TestWebhookCertDefaultsMatchChart: for the default release (named
// "palisade"), the chart passes each certificate flag the value the binary
// defaults to, so `palisade webhook` run by hand behaves as installed.
func TestWebhookCertDefaultsMatchChart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	out, err := exec.Command(palisadeBinary(t), "webhook", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("palisade webhook --help: %v\n%s", err, out)
	}
	r := mustRender(t, defaultRelease, nil)
	args := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook")).Spec.Template.Spec.Containers[0].Args
	for _, flag := range []string{"--cert-mode", "--cert-secret", "--service-name", "--mutating-configuration", "--validating-configuration"} {
		m := regexp.MustCompile(`(?m)^\s+` + flag + ` string .*\(default "([^"]*)"\)$`).FindSubmatch(out)
		if m == nil {
			t.Errorf("palisade webhook --help shows no default for %s", flag)
			continue
		}
		if want := flag + "=" + string(m[1]); !slices.Contains(args, want) {
			t.Errorf("the chart does not pass the binary's default %s (args: %v)", want, args)
		}
	}
}

// TestChartArgsServeAdmission runs the built binary with the exact args the
// chart's webhook Deployment passes, in each certificate mode, as the
// chart's ServiceAccount under the chart's RBAC, against a real API server
// holding the chart's objects. Only what a pod's environment supplies is
// substituted: the port and probe addresses (a free local port, as the
// container has its own), the mounted standard and the emptyDir. The
// chart's Service is pointed at this machine (ExternalName localhost;
// there is no kube-proxy) and the configurations at the free port.
// Each mode must become ready with its "certificates" check, and a
// non-compliant pod must be denied by the webhook, through the API server
// (which verifies the certificate against the configurations' caBundle).
func TestChartArgsServeAdmission(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it against a real API server")
	}
	needAPIServer(t) // skips without control-plane binaries
	bin := palisadeBinary(t)
	// Its own control plane: the chart's configurations are live here and
	// fail closed, which other tests' namespaces must not meet.
	assets, _ := testenv.Assets()
	ctrllog.SetLogger(logr.Discard())
	env := &envtest.Environment{BinaryAssetsDirectory: assets, CRDs: minimalCRDs()}
	// The API server presents the site's client certificate to the
	// webhooks it calls; the chart's values carry the CA.
	site(t).Configure(env)
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() { env.Stop() }) //nolint:errcheck // best effort
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		mode string
		rl   rel
		// vals get the CA (PEM) of a certificate made for the release's
		// Service, for modes that take one.
		vals func(caPEM string) map[string]any
		// before runs ahead of the binary, after once it runs (in the
		// background: the binary must wait for what it does).
		before, after func(t *testing.T, h *chartWebhook)
		check         func(t *testing.T, h *chartWebhook)
	}{
		{
			mode: "self-managed", rl: rel{"e2e", "palisade-e2e"},
			vals:  func(string) map[string]any { return nil },
			check: checkSelfManaged,
		},
		{
			// The user's Secret and CA exist before the install.
			mode: "secret", rl: rel{"byo", "palisade-e2e-byo"},
			vals: func(ca string) map[string]any {
				return values("certs.mode", "secret", "certs.secretName", "byo-serving", "certs.caBundle", ca)
			},
			before: func(t *testing.T, h *chartWebhook) { h.createServingSecret(t, "byo-serving", false) },
			check:  func(t *testing.T, h *chartWebhook) { h.checkServes(t, "byo-serving") },
		},
		{
			// cert-manager issues the Secret and cainjector fills the
			// bundle only after the webhook has started: it waits.
			mode: "cert-manager", rl: rel{"edge", "palisade-e2e-cm"},
			vals: func(string) map[string]any { return values("certs.mode", "cert-manager") },
			after: func(t *testing.T, h *chartWebhook) {
				time.Sleep(2 * time.Second)
				h.createServingSecret(t, "edge-palisade-webhook-tls", true)
				h.injectBundle(t, h.ca.certPEM)
			},
			check: func(t *testing.T, h *chartWebhook) { h.checkServes(t, "edge-palisade-webhook-tls") },
		},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			h := &chartWebhook{c: c, ns: tc.rl.namespace}
			svcName := tc.rl.name + "-palisade-webhook"
			h.ca = newServingCA(t, svcName+"."+tc.rl.namespace+".svc")
			r := mustRender(t, tc.rl, tc.vals(string(h.ca.certPEM)))
			install(t.Context(), t, c, tc.rl.namespace, r)
			h.pointAtThisMachine(t, r)
			if tc.before != nil {
				tc.before(t, h)
			}
			h.start(t, bin, env, cfg, r)
			if tc.after != nil {
				done := make(chan struct{})
				go func() { defer close(done); tc.after(t, h) }()
				t.Cleanup(func() { <-done })
			}
			h.waitReady(t)
			tc.check(t, h)
			h.checkAdmission(t)
			if tc.mode == "self-managed" {
				runHelmTestPod(t, env, cfg, tc.rl.namespace, r)
				h.checkCallersAndScrapers(t, cfg, r)
			}
		})
	}
}

// chartWebhook is one installed release and its webhook process.
type chartWebhook struct {
	c           client.Client
	ns          string
	svc         *corev1.Service
	ca          servingCA
	certDir     string
	port        int
	healthPort  int
	metricsPort int
	out         lockedBuffer
	exited      chan error
	started     time.Time
}

// pointAtThisMachine turns the release's Service into an ExternalName for
// localhost and routes both configurations to the free port.
func (h *chartWebhook) pointAtThisMachine(t *testing.T, r *rendered) {
	t.Helper()
	ctx := t.Context()
	var svcName string
	for _, s := range r.find("Service", "") {
		if !strings.HasSuffix(s.GetName(), "-metrics") {
			svcName = s.GetName()
		}
	}
	h.port, h.healthPort, h.metricsPort = freeLocalPort(t), freeLocalPort(t), freeLocalPort(t)
	h.svc = &corev1.Service{}
	if err := h.c.Get(ctx, client.ObjectKey{Namespace: h.ns, Name: svcName}, h.svc); err != nil {
		t.Fatal(err)
	}
	h.svc.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost", Ports: h.svc.Spec.Ports}
	if err := h.c.Update(ctx, h.svc); err != nil {
		t.Fatalf("point the Service at this machine: %v", err)
	}
	p := int32(h.port)
	h.updateConfigurations(t, func(cc *admissionregistrationv1.WebhookClientConfig) { cc.Service.Port = &p })
}

// updateConfigurations applies edit to every webhook of both
// configurations, retrying on conflicts with the webhook's own writes.
func (h *chartWebhook) updateConfigurations(t *testing.T, edit func(*admissionregistrationv1.WebhookClientConfig)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		mut := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := h.c.Get(ctx, client.ObjectKey{Name: webhook.MutatingConfigurationName}, mut); err != nil {
			return err
		}
		for i := range mut.Webhooks {
			edit(&mut.Webhooks[i].ClientConfig)
		}
		return h.c.Update(ctx, mut)
	})
	if err == nil {
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			val := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := h.c.Get(ctx, client.ObjectKey{Name: webhook.ValidatingConfigurationName}, val); err != nil {
				return err
			}
			for i := range val.Webhooks {
				edit(&val.Webhooks[i].ClientConfig)
			}
			return h.c.Update(ctx, val)
		})
	}
	if err != nil {
		t.Errorf("update webhook configurations: %v", err)
	}
}

// injectBundle does what cert-manager's cainjector does.
func (h *chartWebhook) injectBundle(t *testing.T, bundle []byte) {
	h.updateConfigurations(t, func(cc *admissionregistrationv1.WebhookClientConfig) { cc.CABundle = bundle })
}

// createServingSecret stores the test CA's serving certificate as the
// user (or cert-manager, withCA: it adds ca.crt) would.
func (h *chartWebhook) createServingSecret(t *testing.T, name string, withCA bool) {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": h.ca.servingPEM, "tls.key": h.ca.servingKeyPEM},
	}
	if withCA {
		s.Data["ca.crt"] = h.ca.certPEM
	}
	if err := h.c.Create(context.Background(), s); err != nil {
		t.Errorf("create secret %s: %v", name, err)
	}
}

// start runs the binary with the Deployment's args, as its ServiceAccount.
func (h *chartWebhook) start(t *testing.T, bin string, env *envtest.Environment, cfg *rest.Config, r *rendered) {
	t.Helper()
	dep := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))
	sa := r.oneComponent(t, "ServiceAccount", "webhook").GetName()
	var standard *corev1.ConfigMap
	for _, cm := range r.find("ConfigMap", "") {
		if strings.HasSuffix(cm.GetName(), "-standard") {
			standard = typed[corev1.ConfigMap](t, cm)
		}
	}
	dir := t.TempDir()
	kubeconfig := kubeconfigFor(t, env, cfg, serviceAccountUser(h.ns, sa), dir)
	standardFile := filepath.Join(dir, "standard.yaml")
	h.certDir = filepath.Join(dir, "certs")
	if err := os.WriteFile(standardFile, []byte(standard.Data["standard.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	container := dep.Spec.Template.Spec.Containers[0]
	// Metrics on every address, as in the pod: served over TLS, each
	// scrape's token checked by the API server under the chart's RBAC.
	args, err := substituteArgs(container.Args, map[string]string{
		"--port":                      fmt.Sprint(h.port),
		"--health-probe-bind-address": fmt.Sprintf("127.0.0.1:%d", h.healthPort),
		"--metrics-bind-address":      fmt.Sprintf(":%d", h.metricsPort),
		"--standard":                  standardFile,
		"--cert-dir":                  h.certDir,
		"--client-ca-file":            site(t).CAFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	args = append(args, "--host=127.0.0.1", "--kubeconfig="+kubeconfig)
	t.Logf("palisade %s", strings.Join(args, " "))

	runCtx, stop := context.WithCancel(context.Background())
	cmd := exec.CommandContext(runCtx, bin, args...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+h.ns)
	cmd.Stdout, cmd.Stderr = &h.out, &h.out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	h.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.exited = make(chan error, 1)
	go func() { h.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stop()
		// Interrupted, it must shut down cleanly: exit status 0.
		if err := <-h.exited; cmd.ProcessState == nil || !cmd.ProcessState.Success() {
			t.Errorf("palisade webhook exited with %v\n%s", err, h.out.String())
		}
	})
}

// waitReady waits for /readyz, which passes only with the certificate
// written and the TLS server answering, and checks it lists both checks.
func (h *chartWebhook) waitReady(t *testing.T) {
	t.Helper()
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz?verbose", h.healthPort)
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-h.exited:
			h.exited <- err
			t.Fatalf("palisade webhook exited before ready: %v\n%s", err, h.out.String())
		default:
		}
		if resp, err := http.Get(readyz); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Logf("ready %s after start", time.Since(h.started).Round(time.Millisecond))
				if body := string(b); !strings.Contains(body, "[+]certificates ok") || !strings.Contains(body, "[+]webhook ok") {
					t.Errorf("/readyz does not report the certificate and webhook checks:\n%s", body)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 90s\n%s", h.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkSelfManaged: the Secret exists, is owned by the Service (envtest
// runs no garbage collector: the reference is what `helm uninstall`
// relies on), and every webhook carries its CA.
func checkSelfManaged(t *testing.T, h *chartWebhook) {
	t.Helper()
	ctx := t.Context()
	secret := &corev1.Secret{}
	if err := h.c.Get(ctx, client.ObjectKey{Namespace: h.ns, Name: "e2e-palisade-webhook-tls"}, secret); err != nil {
		t.Fatalf("the self-managed Secret: %v", err)
	}
	svc := &corev1.Service{}
	if err := h.c.Get(ctx, client.ObjectKeyFromObject(h.svc), svc); err != nil {
		t.Fatal(err)
	}
	if len(secret.OwnerReferences) != 1 {
		t.Fatalf("secret owners %+v, want the Service %s", secret.OwnerReferences, svc.Name)
	}
	if o := secret.OwnerReferences[0]; o.APIVersion != "v1" || o.Kind != "Service" || o.Name != svc.Name || o.UID != svc.UID ||
		o.BlockOwnerDeletion == nil || *o.BlockOwnerDeletion {
		t.Errorf("secret owner %+v, want v1 Service %s uid %s, blockOwnerDeletion false", o, svc.Name, svc.UID)
	}
	for i, b := range h.bundles(t) {
		if len(b) == 0 || !bytes.Equal(b, secret.Data["ca.crt"]) {
			t.Errorf("webhook %d: caBundle is not the Secret's ca.crt", i)
		}
	}
	h.checkServes(t, secret.Name)
}

// checkServes: the certificate directory holds the Secret's certificate.
func (h *chartWebhook) checkServes(t *testing.T, secretName string) {
	t.Helper()
	secret := &corev1.Secret{}
	if err := h.c.Get(t.Context(), client.ObjectKey{Namespace: h.ns, Name: secretName}, secret); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(h.certDir, "tls.crt"))
	if err != nil || !bytes.Equal(got, secret.Data["tls.crt"]) {
		t.Errorf("the certificate directory does not hold Secret %s's tls.crt (%v)", secretName, err)
	}
}

func (h *chartWebhook) bundles(t *testing.T) [][]byte {
	t.Helper()
	mut := &admissionregistrationv1.MutatingWebhookConfiguration{}
	val := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := h.c.Get(t.Context(), client.ObjectKey{Name: webhook.MutatingConfigurationName}, mut); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Get(t.Context(), client.ObjectKey{Name: webhook.ValidatingConfigurationName}, val); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, w := range mut.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	for _, w := range val.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

// checkAdmission: admissions through the API server, judged by the binary.
func (h *chartWebhook) checkAdmission(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	bad := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns + "-unlabelled"}}
	if err := h.c.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), `admission webhook "namespaces.validate.palisade.dev" denied the request`) {
		t.Errorf("unlabelled namespace: err = %v, want a denial by namespaces.validate", err)
	}
	shop := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns + "-shop", Labels: map[string]string{"owner": "web-team", "env": "dev", "data-classification": "internal"}}}
	if err := h.c.Create(ctx, shop); err != nil {
		t.Fatalf("compliant namespace refused: %v", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: shop.Name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:1"}}},
	}
	err := h.c.Create(ctx, pod)
	if err == nil || !strings.Contains(err.Error(), `admission webhook "pods.validate.palisade.dev" denied the request`) ||
		!strings.Contains(err.Error(), "[pod-tier] pod "+shop.Name+"/web: missing label tier") {
		t.Errorf("unlabelled pod: err = %v, want a denial by pods.validate naming [pod-tier]", err)
	}
	pod.Labels = map[string]string{"app": "web", "tier": "frontend"}
	if err := h.c.Create(ctx, pod, client.DryRunAll); err != nil {
		t.Errorf("compliant pod refused: %v", err)
	}
}

// servingCA is a CA and a serving certificate it signed for one DNS name.
type servingCA struct {
	certPEM, servingPEM, servingKeyPEM []byte
}

func newServingCA(t *testing.T, dnsName string) servingCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return servingCA{
		certPEM:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		servingPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		servingKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// substituteArgs replaces the values of the named --flag=value args; every
// name must occur, so that a renamed chart arg fails here.
func substituteArgs(args []string, values map[string]string) ([]string, error) {
	out := slices.Clone(args)
	seen := map[string]bool{}
	for i, a := range out {
		name, _, ok := strings.Cut(a, "=")
		if v, sub := values[name]; ok && sub {
			out[i] = name + "=" + v
			seen[name] = true
		}
	}
	for name := range values {
		if !seen[name] {
			return nil, fmt.Errorf("the chart no longer passes %s=...: %v", name, args)
		}
	}
	return out, nil
}

func freeLocalPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
