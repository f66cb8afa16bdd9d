package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
)

// MaxRequestBytes bounds an AdmissionReview body. The API server's own
// request limit is 3 MiB of object plus the old object on UPDATE.
const MaxRequestBytes = 7 << 20

// guardHTTP answers malformed HTTP with an HTTP error status, before
// controller-runtime's handler (which answers them with HTTP 200 and an
// error inside the review): a client that is not an API server, or a
// broken proxy, gets a plain, clear answer.
func guardHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method "+r.Method+" not allowed: send an AdmissionReview with POST", http.StatusMethodNotAllowed)
			return
		}
		ct := r.Header.Get("Content-Type")
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			http.Error(w, fmt.Sprintf("content type %q not supported: want application/json", ct), http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBytes+1))
		if err != nil {
			http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > MaxRequestBytes {
			http.Error(w, fmt.Sprintf("request body larger than %d bytes", MaxRequestBytes), http.StatusRequestEntityTooLarge)
			return
		}
		if err := checkReview(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// checkReview rejects bodies that are not an admission.k8s.io/v1 (or
// v1beta1) AdmissionReview with a request.
func checkReview(body []byte) error {
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return fmt.Errorf("decode admission review: %w", err)
	}
	switch review.APIVersion {
	case "admission.k8s.io/v1", "admission.k8s.io/v1beta1":
	default:
		return fmt.Errorf("decode admission review: apiVersion %q not supported: want admission.k8s.io/v1", review.APIVersion)
	}
	if review.Kind != "AdmissionReview" {
		return fmt.Errorf("decode admission review: kind %q: want AdmissionReview", review.Kind)
	}
	if review.Request == nil {
		return fmt.Errorf("decode admission review: no request")
	}
	if review.Request.UID == "" {
		return fmt.Errorf("decode admission review: request.uid is empty")
	}
	return nil
}
