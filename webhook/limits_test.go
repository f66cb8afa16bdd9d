package webhook_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/palisade-dev/palisade/webhook"
)

// slowRequest opens a connection as the API server and sends an
// AdmissionReview's headers and first byte, then nothing: it holds a slot
// until the server gives up reading it.
func slowRequest(t *testing.T, s *suite) *tls.Conn {
	t.Helper()
	cert, err := s.clientAuth.Issue(s.clientAuth.ClientName)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}) //nolint:gosec // the test checks the server's limits
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", webhook.PathValidatePods)
	return conn
}

func gaugeValue(t *testing.T, s *suite, name string) float64 {
	t.Helper()
	families, err := s.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// TestRequestsInFlightAreBounded fills every slot of the real server with
// requests whose bodies never arrive (a slow or malicious client holding
// the API server's certificate): the next request gets 429, counted as
// overloaded, never judged; each slow request is cut once the read timeout
// passes, freeing its slot, and requests are judged again.
func TestRequestsInFlightAreBounded(t *testing.T) {
	s := needSuite(t)
	before := refusedCount(t, s, webhook.RefusedOverloaded)
	var slow []*tls.Conn
	for range suiteMaxConcurrent {
		slow = append(slow, slowRequest(t, s))
	}
	eventually(t, "every slot taken", func() bool { return gaugeValue(t, s, "palisade_webhook_requests_in_flight") == suiteMaxConcurrent })

	c := s.asAPIServer(t)
	review := forgedReview("overload-probe", "forged", "overload-probe")
	status, body := postReview(t, c, "https://"+s.addr+webhook.PathValidatePods, review)
	if status != http.StatusTooManyRequests || !strings.Contains(body, "too many admission requests in flight") {
		t.Errorf("request beyond the bound: status %d body %q, want 429", status, body)
	}
	if got := refusedCount(t, s, webhook.RefusedOverloaded) - before; got != 1 {
		t.Errorf("overload refusals counted: %v, want 1", got)
	}

	// The slow requests are cut at the read timeout, not left to hold
	// their slots: each gets an answer (or a closed connection) well
	// within a few timeouts.
	deadline := time.Now().Add(5 * suiteReadTimeout)
	for i, conn := range slow {
		conn.SetReadDeadline(deadline) //nolint:errcheck // a failed set shows as a read error below
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		switch {
		case err == nil:
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("slow request %d: judged (%s)", i, b)
			}
		case strings.Contains(err.Error(), "timeout"):
			t.Fatalf("slow request %d still held after %s: the read timeout (%s) did not cut it", i, 5*suiteReadTimeout, suiteReadTimeout)
		}
	}
	eventually(t, "slots freed", func() bool { return gaugeValue(t, s, "palisade_webhook_requests_in_flight") == 0 })
	if status, body := postReview(t, c, "https://"+s.addr+webhook.PathValidatePods, review); status != http.StatusOK {
		t.Errorf("after the slow requests: status %d body %q, want a judged review", status, body)
	}
}

// TestRequestLabelsAreBounded: kinds an attacker (or a broken
// configuration) makes up are counted as "other", never as series of
// their own.
func TestRequestLabelsAreBounded(t *testing.T) {
	s := needSuite(t)
	c := s.asAPIServer(t)
	for i := range 20 {
		kind := fmt.Sprintf("Madeup%d", i)
		body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"label-%d","kind":{"group":"x.example","version":"v1","kind":%q},`+
			`"resource":{"group":"x.example","version":"v1","resource":"madeups"},"namespace":"forged","name":"m","operation":"EXPLODE","userInfo":{"username":"alice"},"object":{}}}`, i, kind)
		if status, out := postReview(t, c, "https://"+s.addr+webhook.PathValidatePods, body); status != http.StatusOK {
			t.Fatalf("status %d: %s", status, out)
		}
	}
	families, err := s.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	others := 0.0
	for _, f := range families {
		if f.GetName() != "palisade_admission_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			kind, op := labelOf(m, "kind"), labelOf(m, "operation")
			if strings.HasPrefix(kind, "Madeup") || op == "EXPLODE" {
				t.Errorf("a made-up label value became a series: kind=%s operation=%s", kind, op)
			}
			if kind == webhook.OtherLabel && op == webhook.OtherLabel {
				others += m.GetCounter().GetValue()
			}
		}
	}
	if others < 20 {
		t.Errorf("kind=other operation=other counted %v, want at least 20", others)
	}
}
