package webhook_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/palisade-dev/palisade/rules"
	"github.com/palisade-dev/palisade/webhook"
)

// podReview is the AdmissionReview the API server sends for a compliant
// pod CREATE.
func podReview(b *testing.B) []byte {
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "api-7d9f", Namespace: "shop", Labels: map[string]string{"app": "api", "tier": "backend", "env": "prod", "pod-template-hash": "7d9f"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "registry.example/api:1.2.3"}}},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "bench", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "shop", Name: "api-7d9f", Operation: admissionv1.Create,
			UserInfo: authUser(), Object: runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func benchServer(b *testing.B, h http.Handler) (*httptest.Server, *http.Client) {
	srv := httptest.NewTLSServer(h)
	b.Cleanup(srv.Close)
	c := srv.Client()
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	return srv, c
}

func post(b *testing.B, c *http.Client, url string, body []byte) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkValidatePodOverTLS is the whole validating path of a compliant
// pod (HTTP guard, decode, namespace lookup in the cache, standard,
// response, decision record without sinks) over loopback TLS.
func BenchmarkValidatePodOverTLS(b *testing.B) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", UID: "u", Labels: map[string]string{"owner": "a", "env": "prod", "data-classification": "pci"}}}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(ns).Build()
	ev, err := rules.NewEvaluator(rules.Default())
	if err != nil {
		b.Fatal(err)
	}
	paths, err := webhook.Handlers(webhook.Options{Evaluator: ev, Client: c, ServiceAccount: serviceAccount}, clientgoscheme.Scheme)
	if err != nil {
		b.Fatal(err)
	}
	srv, hc := benchServer(b, paths[webhook.PathValidatePods])
	body := podReview(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		post(b, hc, srv.URL, body)
	}
}

// BenchmarkNoopHandlerOverTLS is the floor: the same request over the same
// loopback TLS to a handler that only reads it and answers allowed.
func BenchmarkNoopHandlerOverTLS(b *testing.B) {
	answer := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"bench","allowed":true}}`)
	srv, hc := benchServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	body := podReview(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		post(b, hc, srv.URL, body)
	}
}

func authUser() authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: "system:serviceaccount:shop:deployer", Groups: []string{"system:serviceaccounts"}}
}
