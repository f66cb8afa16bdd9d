package webhook_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// kubectlCase is one user command against the real API server, with the
// exact lines kubectl must print. Cases run in order: later ones build on
// the namespaces earlier ones created.
type kubectlCase struct {
	name     string
	user     string // "admin" (system:masters) or "alice" (a developer)
	args     []string
	manifest string
	exit     int
	// stderr lines that must appear verbatim (kubectl prints denials and
	// warnings there).
	stderr []string
	// noStderr: substrings that must not appear.
	noStderr []string
	stdout   []string
}

const nsShop = `
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {owner: team-a, env: prod, data-classification: pci}
`

const nsWeb = `
apiVersion: v1
kind: Namespace
metadata:
  name: web
  labels: {owner: team-b, env: dev, data-classification: public}
`

var admissionCases = []kubectlCase{
	{
		name: "compliant namespace is admitted", user: "alice",
		args: []string{"create", "-f", "-"}, manifest: nsShop,
		stdout: []string{"namespace/shop created"},
	},
	{
		name: "namespace without required labels is denied", user: "alice",
		args: []string{"create", "-f", "-"}, exit: 1,
		manifest: `
apiVersion: v1
kind: Namespace
metadata: {name: bad-ns, labels: {env: qa}}
`,
		stderr: []string{
			`admission webhook "namespaces.validate.palisade.dev" denied the request: [ns-owner] namespace bad-ns: missing label owner: add label owner (lowercase letters, digits, '-' and '.')`,
			`[ns-env] namespace bad-ns: label env="qa" is not allowed: set env to one of: dev, staging, prod`,
			`[ns-data-classification] namespace bad-ns: missing label data-classification: add label data-classification (one of: public, internal, pci, hipaa)`,
		},
	},
	{
		name: "open namespace is admitted", user: "alice",
		args: []string{"create", "-f", "-"}, manifest: nsWeb,
		stdout: []string{"namespace/web created"},
	},
	{
		name: "namespace gets its profile annotation", user: "alice",
		args:   []string{"get", "namespace", "shop", "-o", "jsonpath={.metadata.annotations.palisade\\.dev/profile}"},
		stdout: []string{"restricted"},
	},
	{
		name: "developer cannot exempt a namespace", user: "alice",
		args: []string{"create", "-f", "-"}, exit: 1,
		manifest: `
apiVersion: v1
kind: Namespace
metadata:
  name: sneaky
  labels: {owner: team-a, env: dev, data-classification: public}
  annotations: {palisade.dev/exempt: "true"}
`,
		stderr: []string{`[reserved-key] namespace sneaky: annotation palisade.dev/exempt is reserved: remove annotation palisade.dev/exempt (only Palisade and members of system:masters may set palisade.dev/ keys)`},
	},
	{
		name: "compliant pod is admitted and inherits env", user: "alice",
		args: []string{"create", "-f", "-"},
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api, tier: backend}}
spec: {containers: [{name: c, image: registry.example/api:1}]}
`,
		stdout: []string{"pod/api created"},
	},
	{
		name: "inherited env label is on the pod", user: "alice",
		args:   []string{"get", "pod", "-n", "shop", "api", "-o", "jsonpath={.metadata.labels.env}"},
		stdout: []string{"prod"},
	},
	{
		name: "pod without tier is denied", user: "alice",
		args: []string{"create", "-f", "-"}, exit: 1,
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: no-tier, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, image: registry.example/api:1}]}
`,
		stderr: []string{`admission webhook "pods.validate.palisade.dev" denied the request: [pod-tier] pod shop/no-tier: missing label tier: add label tier (one of: frontend, backend, data)`},
	},
	{
		name: "pod claiming another env than its namespace is denied", user: "alice",
		args: []string{"create", "-f", "-"}, exit: 1,
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: wrong-env, namespace: shop, labels: {app: api, tier: backend, env: dev}}
spec: {containers: [{name: c, image: registry.example/api:1}]}
`,
		stderr: []string{`[pod-env] pod shop/wrong-env: label env="dev" differs from namespace shop env="prod": remove label env (it is inherited) or set it to prod`},
	},
	{
		name: "deployment with a bad template fails at apply", user: "alice",
		args: []string{"apply", "-f", "-"}, exit: 1,
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart, tier: cache}}
    spec: {containers: [{name: c, image: registry.example/cart:1}]}
`,
		stderr: []string{`admission webhook "workloads.validate.palisade.dev" denied the request: [pod-tier] deployment shop/cart (pod template): label tier="cache" is not allowed: set tier to one of: frontend, backend, data`},
	},
	{
		name: "compliant deployment is admitted", user: "alice",
		args: []string{"apply", "-f", "-"},
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart, tier: backend}}
    spec: {containers: [{name: c, image: registry.example/cart:1}]}
`,
		stdout: []string{"deployment.apps/cart created"},
	},
	{
		name: "cronjob template is judged", user: "alice",
		args: []string{"create", "-f", "-"}, exit: 1,
		manifest: `
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {tier: backend}}
        spec: {restartPolicy: Never, containers: [{name: c, image: registry.example/report:1}]}
`,
		stderr: []string{`[pod-app] cronjob shop/report (pod template): missing label app: add label app (a lowercase DNS label)`},
	},
	{
		name: "developer cannot delete a baseline policy", user: "alice",
		args: []string{"delete", "networkpolicy", "-n", "shop", "palisade-default-deny"}, exit: 1,
		stderr: []string{`admission webhook "networkpolicies.validate.palisade.dev" denied the request: [netpol-managed-readonly] networkpolicy shop/palisade-default-deny: baseline policy is managed by Palisade and cannot be deleted: add your own NetworkPolicy to allow more traffic; the baseline follows the namespace's data-classification label`},
	},
	{
		name: "cluster admin cannot edit a baseline policy either", user: "admin",
		args: []string{"label", "networkpolicy", "-n", "shop", "palisade-allow-dns", "app.kubernetes.io/managed-by-"}, exit: 1,
		stderr: []string{`[netpol-managed-readonly] networkpolicy shop/palisade-allow-dns: label app.kubernetes.io/managed-by of a baseline policy cannot be changed: add your own NetworkPolicy to allow more traffic instead of editing the baseline`},
	},
	{
		name: "forging a managed policy is denied", user: "alice",
		args: []string{"create", "-f", "-"}, exit: 1,
		manifest: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: shop, labels: {app.kubernetes.io/managed-by: palisade}}
spec: {podSelector: {}, ingress: [{}]}
`,
		stderr: []string{`[netpol-managed-readonly] networkpolicy shop/allow-all: label app.kubernetes.io/managed-by=palisade is reserved for Palisade's baseline policies: remove label app.kubernetes.io/managed-by or give it another value`},
	},
	{
		name: "ingress from all namespaces is denied in a pci namespace", user: "alice",
		args: []string{"create", "-f", "-"}, exit: 1,
		manifest: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-everywhere, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{namespaceSelector: {}}]}]
`,
		stderr: []string{`denied the request: [netpol-regulated-all-namespaces] networkpolicy shop/from-everywhere`},
	},
	{
		name: "selector on a non-identity key is admitted with a warning", user: "alice",
		args: []string{"create", "-f", "-"},
		manifest: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: by-version, namespace: web}
spec:
  podSelector: {matchLabels: {version: v2}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]
`,
		stdout: []string{"networkpolicy.networking.k8s.io/by-version created"},
		stderr: []string{`Warning: [netpol-non-identity-selector] networkpolicy web/by-version: spec.podSelector selects on pod label version, which is not an identity label, so it cannot select by identity: select pods by app, tier or env`},
	},
	{
		// Policies add up: web's baseline palisade-allow-dns lets every pod
		// reach DNS, so only the open CIDR is warned about.
		name: "egress isolation without DNS of its own and open CIDR: only the CIDR is warned", user: "alice",
		args: []string{"create", "-f", "-"},
		manifest: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-open, namespace: web}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 443}]}]
`,
		stdout:   []string{"networkpolicy.networking.k8s.io/egress-open created"},
		stderr:   []string{"Warning: [netpol-open-cidr] networkpolicy web/egress-open"},
		noStderr: []string{"[netpol-egress-without-dns]"},
	},
	{
		name: "system namespaces are never blocked", user: "admin",
		args: []string{"create", "-f", "-"},
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: unlabelled, namespace: kube-system}
spec: {containers: [{name: c, image: registry.example/x:1}]}
`,
		stdout: []string{"pod/unlabelled created"},
	},
	{
		name: "palisade's own namespace is never blocked", user: "admin",
		args: []string{"create", "-f", "-"},
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: unlabelled, namespace: palisade-system}
spec: {containers: [{name: c, image: registry.example/x:1}]}
`,
		stdout: []string{"pod/unlabelled created"},
	},
	{
		name: "a privileged group may exempt a namespace", user: "admin",
		args: []string{"create", "-f", "-"},
		manifest: `
apiVersion: v1
kind: Namespace
metadata: {name: sandbox, annotations: {palisade.dev/exempt: "true"}}
---
apiVersion: v1
kind: Pod
metadata: {name: anything, namespace: sandbox}
spec: {containers: [{name: c, image: registry.example/x:1}]}
`,
		stdout: []string{"namespace/sandbox created", "pod/anything created"},
	},
	{
		name: "warn action admits with a warning", user: "admin",
		args: []string{"create", "-f", "-"},
		manifest: `
apiVersion: v1
kind: Namespace
metadata:
  name: rollout
  labels: {owner: team-c, env: staging, data-classification: internal}
  annotations: {palisade.dev/rule-actions: "pod-tier=warn,pod-app=dryrun"}
---
apiVersion: v1
kind: Pod
metadata: {name: legacy-app, namespace: rollout}
spec: {containers: [{name: c, image: registry.example/x:1}]}
`,
		stdout:   []string{"pod/legacy-app created"},
		stderr:   []string{"Warning: [pod-tier] pod rollout/legacy-app: missing label tier: add label tier (one of: frontend, backend, data)"},
		noStderr: []string{"[pod-app]"},
	},
	{
		name: "a developer cannot relax rule actions", user: "alice",
		args: []string{"annotate", "namespace", "shop", "palisade.dev/rule-actions=*=dryrun"}, exit: 1,
		stderr: []string{`[reserved-key] namespace shop: annotation palisade.dev/rule-actions is reserved`},
	},
	{
		name: "server-side dry run is judged too", user: "alice",
		args: []string{"create", "--dry-run=server", "-f", "-"}, exit: 1,
		manifest: `
apiVersion: v1
kind: Pod
metadata: {name: dry, namespace: web, labels: {app: web}}
spec: {containers: [{name: c, image: registry.example/x:1}]}
`,
		stderr: []string{`[pod-tier] pod web/dry: missing label tier`},
	},
}

func TestAdmissionWithRealKubectl(t *testing.T) {
	s := needSuite(t)
	for _, tc := range admissionCases {
		ok := t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := s.kubectl[tc.user].Run(ctx, strings.TrimPrefix(tc.manifest, "\n"), tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if res.Exit != tc.exit {
				t.Fatalf("kubectl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tc.args, " "), res.Exit, tc.exit, res.Stdout, res.Stderr)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(res.Stderr, want) {
					t.Errorf("stderr lacks %q\nstderr:\n%s", want, res.Stderr)
				}
			}
			for _, bad := range tc.noStderr {
				if strings.Contains(res.Stderr, bad) {
					t.Errorf("stderr has %q\nstderr:\n%s", bad, res.Stderr)
				}
			}
			for _, want := range tc.stdout {
				if !strings.Contains(res.Stdout, want) {
					t.Errorf("stdout lacks %q\nstdout:\n%s", want, res.Stdout)
				}
			}
		})
		if !ok && tc.exit == 0 && tc.args[0] == "create" {
			// Later cases build on what this one creates.
			t.FailNow()
		}
	}
}
