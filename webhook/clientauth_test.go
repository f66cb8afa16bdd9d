package webhook_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/palisade-dev/palisade/internal/testkit/podnet"
	"github.com/palisade-dev/palisade/internal/testkit/testenv"
	"github.com/palisade-dev/palisade/webhook"
)

// forgedReview is what an attacker would post: a pod the standard
// rejects, "created" by a user who never asked. Judged, it would be a
// denial, a decision record and an Event.
func forgedReview(uid, ns, name string) string {
	return fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":%q,`+
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},`+
		`"namespace":%q,"name":%q,"operation":"CREATE","userInfo":{"username":"mallory","groups":["system:masters"]},`+
		`"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"namespace":%q,"labels":{"app":"x"}},`+
		`"spec":{"containers":[{"name":"c","image":"registry.example/x:1"}]}}}}`, uid, ns, name, name, ns)
}

func refusedCount(t *testing.T, s *suite, reason string) float64 {
	t.Helper()
	families, err := s.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "palisade_webhook_refused_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelOf(m, "reason") == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func postReview(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("post %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func clientWith(certs ...tls.Certificate) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the attacker does not care who the server is
		Certificates:       certs,
	}}}
}

// assertNotJudged checks that no decision record names the forged UIDs
// and, once the Event of a real denial in ns has arrived (Events flow),
// that none names the forged pods.
func assertNotJudged(ctx context.Context, t *testing.T, s *suite, ns, realPod string, uids, pods []string) {
	t.Helper()
	eventually(t, "the Event of the API server's own denial of "+realPod, func() bool {
		return len(eventsFor(ctx, t, s, ns, realPod)) > 0
	})
	data, err := os.ReadFile(s.auditFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range uids {
		if strings.Contains(string(data), uid) {
			t.Errorf("a decision record names the forged request %s", uid)
		}
	}
	for _, p := range pods {
		if ev := eventsFor(ctx, t, s, ns, p); len(ev) > 0 {
			t.Errorf("forged request for pod %s became an Event: %q", p, ev[0].Note)
		}
	}
}

func eventsFor(ctx context.Context, t *testing.T, s *suite, ns, pod string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := s.admin.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == pod {
			out = append(out, e)
		}
	}
	return out
}

// TestForgedReviewFromLoopbackIsRefused posts forged AdmissionReviews to
// the real webhook from this host, as any process on a node could: with
// no certificate, with one from another CA for the API server's name, and
// with one the right CA signed for another name. Each is refused with its
// status, counted by reason, and leaves no record and no Event; the API
// server's own request for the same pod is still judged.
func TestForgedReviewFromLoopbackIsRefused(t *testing.T) {
	s := needSuite(t)
	ctx := context.Background()
	createNamespace(ctx, t, s, "forged", "internal")
	untrusted, err := testenv.UntrustedClientCert(s.clientAuth.ClientName)
	if err != nil {
		t.Fatal(err)
	}
	otherName, err := s.clientAuth.Issue("mallory")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, pod, reason string
		client            *http.Client
		status            int
		says              string
	}{
		{"no certificate", "forged-none", webhook.RefusedNoCertificate, clientWith(), 401, "no client certificate"},
		{"untrusted CA", "forged-untrusted", webhook.RefusedUntrustedCertificate, clientWith(untrusted), 403, "not accepted"},
		{"name not allowed", "forged-name", webhook.RefusedNameNotAllowed, clientWith(otherName), 403, "not one of the allowed names"},
	}
	var uids, pods []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uid := "forged-uid-" + tc.pod
			uids, pods = append(uids, uid), append(pods, tc.pod)
			before := refusedCount(t, s, tc.reason)
			for _, path := range []string{webhook.PathValidatePods, webhook.PathMutatePods} {
				status, body := postReview(t, tc.client, "https://"+s.addr+path, forgedReview(uid, "forged", tc.pod))
				if status != tc.status || !strings.Contains(body, tc.says) {
					t.Errorf("%s: status %d body %q, want %d saying %q", path, status, body, tc.status, tc.says)
				}
			}
			if got := refusedCount(t, s, tc.reason) - before; got != 2 {
				t.Errorf("refusals counted as %s: %v, want 2", tc.reason, got)
			}
		})
	}
	// The API server's own request for a pod like the forged ones is judged.
	if stderr := deny(ctx, t, s, "forged", "forged-real"); !strings.Contains(stderr, "missing label") {
		t.Errorf("the API server's request was not judged by the standard: %s", stderr)
	}
	assertNotJudged(ctx, t, s, "forged", "forged-real", uids, pods)
}

// TestForgedReviewFromPodNetworkIsRefused posts a forged AdmissionReview
// from a pod's network namespace: over its veth to the node's side, where
// the webhook port is (carried on to the suite's webhook, as a Service
// would). No certificate: 401, counted, no record, no Event. The same
// path with the API server's certificate is judged, so the refusal is the
// certificate's doing, not the network's.
func TestForgedReviewFromPodNetworkIsRefused(t *testing.T) {
	s := needSuite(t)
	if err := podnet.Available(); err != nil {
		testenv.SkipOrFail(t, "pod network namespaces: %v", err)
	}
	ctx := context.Background()
	nw, err := podnet.New(podnet.NewPrefix("whauth"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("tear down pod network: %v", err)
		}
	})
	node, err := nw.AddNode(podnet.NodeConfig{Name: "node1", Index: 1})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := node.AddPod(podnet.PodConfig{Namespace: "attacker", Name: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := node.Netns().Listen("tcp", net.JoinHostPort(node.Gateway4().String(), "9443"))
	if err != nil {
		t.Fatal(err)
	}
	fwd := testenv.Forward(ln, s.addr)
	t.Cleanup(fwd.Close)
	fromPod := func(certs ...tls.Certificate) *http.Client {
		c := clientWith(certs...)
		c.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return pod.Dial(ctx, &net.Dialer{Timeout: 5 * time.Second}, network, addr)
		}
		return c
	}
	url := "https://" + fwd.Addr() + webhook.PathValidatePods
	createNamespace(ctx, t, s, "forged-pod", "internal")

	before := refusedCount(t, s, webhook.RefusedNoCertificate)
	status, body := postReview(t, fromPod(), url, forgedReview("forged-uid-from-pod", "forged-pod", "forged-from-pod"))
	if status != http.StatusUnauthorized {
		t.Errorf("forged review from the pod: status %d body %q, want 401", status, body)
	}
	if got := refusedCount(t, s, webhook.RefusedNoCertificate) - before; got != 1 {
		t.Errorf("refusals counted: %v, want 1", got)
	}

	apiServer, err := s.clientAuth.Issue(s.clientAuth.ClientName)
	if err != nil {
		t.Fatal(err)
	}
	status, body = postReview(t, fromPod(apiServer), url, forgedReview("with-cert-uid-from-pod", "forged-pod", "forged-real"))
	if status != http.StatusOK || !strings.Contains(body, `"allowed":false`) {
		t.Fatalf("the same path with the API server's certificate: status %d body %q, want a judged denial", status, body)
	}
	assertNotJudged(ctx, t, s, "forged-pod", "forged-real", []string{"forged-uid-from-pod"}, []string{"forged-from-pod"})
}
