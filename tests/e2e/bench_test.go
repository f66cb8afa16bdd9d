package e2e

import (
	"context"
	"testing"
	"time"
)

// BenchmarkPolicyChangeToEnforced measures, per op, the time from the API
// server accepting a new allow to the first packet it lets through (real
// enforcer process, real kernel; includes the enforcer's 50ms debounce).
// remove-ms/op is the same for its removal, to the first dropped
// connection.
func BenchmarkPolicyChangeToEnforced(b *testing.B) {
	w := needWorld(b)
	ctx := context.Background()
	withPolicies(b, w, denyIngressX)
	pass := mustProbes(b, "y/b -> x/a 80/tcp pass")[0]
	drop := mustProbes(b, "y/b -> x/a 80/tcp drop")[0]
	w.expect(b, 10*time.Second, []probe{drop})
	var removal time.Duration
	b.ResetTimer()
	for range b.N {
		objs, err := w.apply(ctx, allowYBToXA)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.until(pass, time.Now(), 5*time.Second); err != nil {
			w.remove(ctx, objs)
			b.Fatal(err)
		}
		b.StopTimer()
		if err := w.remove(ctx, objs); err != nil {
			b.Fatal(err)
		}
		d, err := w.until(drop, time.Now(), 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		removal += d
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(removal.Milliseconds())/float64(b.N), "remove-ms/op")
}
