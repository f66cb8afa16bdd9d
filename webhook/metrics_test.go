package webhook_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/palisade-dev/palisade/internal/testkit/testenv"
)

// TestMetricsNeedAnAuthorizedToken scrapes the real webhook's metrics
// endpoint (bound to every address, so never served in the clear) with
// tokens the real API server issued: none 401, a made-up one refused (500
// "Authentication failed": controller-runtime's filter answers so when
// the TokenReview reports an error for it), a service account without get
// on /metrics 403, the scraper bound to the chart's metrics-reader role
// gets the webhook's series.
func TestMetricsNeedAnAuthorizedToken(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	scraper, err := testenv.ServiceAccountToken(ctx, s.adminCfg, testenv.MonitoringNamespace, testenv.Scraper)
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.ServiceAccountToken(ctx, s.adminCfg, testenv.MonitoringNamespace, testenv.NotAScraper)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		status      []int
	}{
		{"no token", "", []int{http.StatusUnauthorized}},
		{"made-up token", "not-a-token", []int{http.StatusUnauthorized, http.StatusInternalServerError}},
		{"service account without get on /metrics", other, []int{http.StatusForbidden}},
		{"the scraper", scraper, []int{http.StatusOK}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := scrape(t, s.metricsURL, tc.token)
			if !slices.Contains(tc.status, status) {
				t.Fatalf("status %d (%q), want %v", status, body, tc.status)
			}
			leaks := strings.Contains(body, "palisade_admission_requests_total")
			if leaks != (status == http.StatusOK) {
				t.Errorf("status %d: body has the webhook's series: %t", status, leaks)
			}
			if status == http.StatusOK && !strings.Contains(body, "palisade_webhook_refused_requests_total") {
				t.Errorf("scrape lacks the refusal counter:\n%s", body)
			}
		})
	}
	// Plain HTTP on the same port is no way around it.
	resp, err := http.Get(strings.Replace(s.metricsURL, "https://", "http://", 1))
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "palisade_") {
			t.Errorf("plain HTTP scrape served metrics: %d", resp.StatusCode)
		}
	}
}

func scrape(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := clientWith().Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
