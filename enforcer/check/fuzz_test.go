package check

import (
	"strings"
	"testing"
)

// FuzzParsePorts: any text gives ports or an error, never a panic, and
// every port parsed prints back as something that parses to itself.
func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"80/TCP,53/UDP", "80", " 9/sctp ", "0", "65536/TCP", "80/", "/TCP", ",", "80/TCP/UDP"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ports, err := ParsePorts(s)
		if err != nil {
			return
		}
		for _, p := range ports {
			back, err := ParsePort(p.String())
			if err != nil || back != p {
				t.Fatalf("%q: port %v prints as %q, which parses to %v, %v", s, p, p.String(), back, err)
			}
		}
	})
}

// FuzzParseExpectations: any document gives expectations or an error
// naming the file, never a panic, and every expectation is a probe the
// cluster can run.
func FuzzParseExpectations(f *testing.F) {
	for _, s := range []string{
		"results:\n- {from: shop/web, to: db/postgres, port: 5432, protocol: TCP, allowed: true}\n",
		`{"results":[{"from":"shop/worker","to":"shop/web","port":8080,"protocol":"udp","allowed":false,"reason":"x"}]}`,
		"results: []", "results: 3", "{}", "- a", "results:\n- {from: a/b}\n",
	} {
		f.Add(s)
	}
	c := loadShop(f)
	f.Fuzz(func(t *testing.T, doc string) {
		want, err := ParseExpectations(c, "fuzz.yaml", []byte(doc))
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, e := range want {
			if e.From == e.To || e.Port.Number == 0 || e.Port.Protocol == 0 {
				t.Fatalf("unrunnable expectation %+v", e)
			}
			if _, err := c.Pod(e.From.String()); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Pod(e.To.String()); err != nil {
				t.Fatal(err)
			}
		}
	})
}
