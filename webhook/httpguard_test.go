package webhook_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/webhook"
)

// TestBadHTTPInput sends what a broken client might to the real server:
// each gets an HTTP error status with a reason, never a panic or an allow.
func TestBadHTTPInput(t *testing.T) {
	s := needSuite(t)
	c := s.asAPIServer(t)
	review := func(body string) string {
		return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":` + body + `}`
	}
	big := review(`{"uid":"1","object":{"x":"` + strings.Repeat("a", webhook.MaxRequestBytes) + `"}}`)
	cases := []struct {
		name, method, contentType, body string
		status                          int
		reason                          string
	}{
		{"malformed json", "POST", "application/json", `{"apiVersion":`, 400, "decode admission review"},
		{"not a review", "POST", "application/json", `{"apiVersion":"v1","kind":"Pod"}`, 400, `apiVersion "v1" not supported`},
		{"no request", "POST", "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, 400, "no request"},
		{"no uid", "POST", "application/json", review(`{"operation":"CREATE"}`), 400, "request.uid is empty"},
		{"wrong content type", "POST", "text/plain", review(`{"uid":"1"}`), 415, `content type "text/plain" not supported`},
		{"oversized", "POST", "application/json", big, 413, "request body larger than"},
		{"GET", "GET", "application/json", "", 405, "method GET not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "https://"+s.addr+webhook.PathValidatePods, bytes.NewBufferString(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.contentType)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.reason) {
				t.Errorf("status %d body %q, want %d with %q", resp.StatusCode, body, tc.status, tc.reason)
			}
		})
	}
}

// TestGovernedKindOnInternalErrorIsNotAllowed: a pod whose object does not
// decode is an error response (the API server's failurePolicy decides),
// never an allow.
func TestGovernedKindOnInternalErrorIsNotAllowed(t *testing.T) {
	s := needSuite(t)
	c := s.asAPIServer(t)
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"shop","operation":"CREATE","userInfo":{"username":"alice"},"object":{"metadata":{"labels":"not-a-map"}}}}`
	resp, err := c.Post("https://"+s.addr+webhook.PathValidatePods, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(out), `"allowed":false`) || !strings.Contains(string(out), "decode pod") {
		t.Errorf("response %s: want allowed=false with a decode error", out)
	}
}

// TestUngovernedKindIsAllowedAndRecorded: a Service sent to the pod path
// (a hand-edited configuration) is allowed, not judged as a pod.
func TestUngovernedKindIsAllowedAndRecorded(t *testing.T) {
	s := needSuite(t)
	c := s.asAPIServer(t)
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"svc-1","kind":{"group":"","version":"v1","kind":"Service"},"resource":{"group":"","version":"v1","resource":"services"},"namespace":"shop","name":"api","operation":"CREATE","userInfo":{"username":"alice"},"object":{"apiVersion":"v1","kind":"Service","metadata":{"name":"api"}}}}`
	resp, err := c.Post("https://"+s.addr+webhook.PathValidatePods, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(out), `"allowed":true`) {
		t.Fatalf("response %s: want allowed", out)
	}
	data, err := os.ReadFile(s.auditFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"requestUID":"svc-1"`) || !strings.Contains(string(data), "kind /Service not governed by validate-pods") {
		t.Error("no decision record for the ungoverned request")
	}
}
