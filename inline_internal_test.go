package ferry

import (
	"context"
	"testing"
	"time"
)

// TestKeepHint: a Serve worker keeps the reading role only after keepRun
// quick requests in a row; one slow request starts the count again.
func TestKeepHint(t *testing.T) {
	const q, s = 10 * time.Microsecond, time.Millisecond
	run := func(n int, d time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = d
		}
		return out
	}
	tests := []struct {
		name string
		seq  []time.Duration
		want bool
	}{
		{"none", nil, false},
		{"one short", run(keepRun-1, q), false},
		{"enough", run(keepRun, q), true},
		{"many", run(10*keepRun, q), true},
		{"slow last", append(run(keepRun, q), s), false},
		{"slow then enough", append(append(run(keepRun, q), s), run(keepRun, q)...), true},
		{"slow then short", append(append(run(keepRun, q), s), run(keepRun-1, q)...), false},
		{"at the limit", run(keepRun, 50*time.Microsecond), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newKeepHint()
			for _, d := range tt.seq {
				h.handled(d)
			}
			ctx := context.WithValue(context.Background(), keepKey{}, h)
			if got := keepsRole(ctx); got != tt.want {
				t.Errorf("keepsRole = %v, want %v", got, tt.want)
			}
		})
	}
	if keepsRole(context.Background()) {
		t.Error("a context without a hint keeps the role")
	}
}
