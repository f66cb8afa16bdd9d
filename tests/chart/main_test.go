package chart_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// The rendering tests need nothing; the apply and access tests share one
// real control plane (it costs seconds to start).
var (
	admin       client.Client
	sharedEnv   *envtest.Environment
	envSkip     string
	apiWarnings = &warnings{}
)

// warnings collects the warnings the API server returns (deprecated
// fields, unknown values it let through, Pod Security warnings).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// take returns the warnings since the last take.
func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	defer removeSite()
	assets, reason := testenv.Assets()
	if reason != "" {
		envSkip = reason
		return m.Run()
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, CRDs: minimalCRDs()}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		return 1
	}
	defer env.Stop() //nolint:errcheck // best effort at exit
	sharedEnv = env
	cfg.WarningHandlerWithContext = apiWarnings
	if admin, err = client.New(cfg, client.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "create client:", err)
		return 1
	}
	return m.Run()
}

// needAPIServer returns the admin client, or skips (fails under
// PALISADE_REQUIRE_PRIVILEGED=1) with the reason there is no API server.
func needAPIServer(t *testing.T) (context.Context, client.Client) {
	t.Helper()
	if admin == nil {
		testenv.SkipOrFail(t, "%s", envSkip)
	}
	return t.Context(), admin
}

// minimalCRDs stand in for the Prometheus Operator's and cert-manager's
// CRDs: the kinds exist, their content is not validated (the chart's
// cert-manager objects are compared with certs.CertManagerObjects instead).
func minimalCRDs() []*apiextensionsv1.CustomResourceDefinition {
	crd := func(group, kind, plural string) *apiextensionsv1.CustomResourceDefinition {
		preserve := true
		return &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: group,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: plural[:len(plural)-1]},
				Scope: apiextensionsv1.NamespaceScoped,
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: "v1", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object", XPreserveUnknownFields: &preserve,
					}},
				}},
			},
		}
	}
	return []*apiextensionsv1.CustomResourceDefinition{
		crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
		crd("cert-manager.io", "Certificate", "certificates"),
		crd("cert-manager.io", "Issuer", "issuers"),
	}
}
