package webhook_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/palisade-dev/palisade/rules"
	"github.com/palisade-dev/palisade/webhook"
)

// FuzzAdmissionReview feeds arbitrary bodies to every admission path. Any
// input must get a well-formed answer: an HTTP error, or an
// AdmissionReview whose response is an allow, a denial or an error; never
// a panic (recovered panics show as "panic:" errors) and never an allow
// carrying an error code.
func FuzzAdmissionReview(f *testing.F) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", UID: "u", Labels: map[string]string{"owner": "a", "env": "prod", "data-classification": "pci"}}}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(ns).Build()
	ev, err := rules.NewEvaluator(rules.Default())
	if err != nil {
		f.Fatal(err)
	}
	paths, err := webhook.Handlers(webhook.Options{Evaluator: ev, Client: c, ServiceAccount: serviceAccount}, clientgoscheme.Scheme)
	if err != nil {
		f.Fatal(err)
	}
	names := []string{webhook.PathMutatePods, webhook.PathValidatePods, webhook.PathMutateNamespaces, webhook.PathValidateNamespaces, webhook.PathValidateWorkloads, webhook.PathValidateNetworkPolicy}
	for i, seed := range []string{
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"namespace":"shop","operation":"CREATE","object":{"metadata":{"name":"p","labels":{"app":"a"}}}}}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"2","kind":{"version":"v1","kind":"Namespace"},"name":"n","operation":"UPDATE","object":{"metadata":{"name":"n","labels":{"env":"x"}}},"oldObject":{"metadata":{"name":"n"}}}}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"3","kind":{"group":"apps","version":"v1","kind":"Deployment"},"namespace":"shop","operation":"CREATE","object":{"spec":{"template":{"metadata":{"labels":{"app":"x","tier":"data"}}}}}}}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"4","kind":{"group":"networking.k8s.io","version":"v1","kind":"NetworkPolicy"},"namespace":"shop","operation":"DELETE","oldObject":{"metadata":{"name":"palisade-default-deny","labels":{"app.kubernetes.io/managed-by":"palisade"}}}}}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"5","kind":{"group":"batch","version":"v1","kind":"CronJob"},"namespace":"nowhere","operation":"UPDATE","object":{"spec":{}},"oldObject":null}}`,
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"6"}}`,
		`{"apiVersion":`,
		`[]`,
	} {
		f.Add(uint8(i), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, path uint8, body []byte) {
		h := paths[names[int(path)%len(names)]]
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		out := rec.Body.String()
		if strings.Contains(out, "panic:") {
			t.Fatalf("handler panicked on %q: %s", body, out)
		}
		if rec.Code != http.StatusOK {
			if rec.Code >= 500 {
				t.Fatalf("HTTP %d for %q: %s", rec.Code, body, out)
			}
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil {
			t.Fatalf("answer is not an AdmissionReview (%v): %s", err, out)
		}
		r := review.Response
		if r.Allowed && r.Result != nil && r.Result.Code >= 400 {
			t.Fatalf("allowed with error code %d: %s", r.Result.Code, out)
		}
	})
}
