package ferry

import (
	"context"
	"testing"
	"time"
)

// TestKeepHint: a Serve worker keeps the reading role after keepRun/2
// quick requests; a slow one costs keepSlow, so an odd stall does not end
// it, a few slow ones in a row do, and handlers slow one time in ten
// never keep it.
func TestKeepHint(t *testing.T) {
	const q, s = 10 * time.Microsecond, time.Millisecond
	run := func(n int, d time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = d
		}
		return out
	}
	cat := func(parts ...[]time.Duration) []time.Duration {
		var out []time.Duration
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	repeat := func(n int, p []time.Duration) []time.Duration {
		var out []time.Duration
		for range n {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name string
		seq  []time.Duration
		want bool
	}{
		{"none", nil, false},
		{"one short", run(keepRun/2-1, q), false},
		{"enough", run(keepRun/2, q), true},
		{"many", run(10*keepRun, q), true},
		{"an odd stall", cat(run(keepRun, q), run(1, s)), true},
		{"two stalls", cat(run(keepRun, q), run(2, s)), true},
		{"three slow", cat(run(keepRun, q), run(3, s)), false},
		{"three slow, one short of back", cat(run(keepRun, q), run(3, s), run(keepRun/2-keepRun+3*keepSlow-1, q)), false},
		{"three slow, back", cat(run(keepRun, q), run(3, s), run(keepRun/2-keepRun+3*keepSlow, q)), true},
		{"one in a hundred slow", cat(run(keepRun, q), repeat(20, cat(run(99, q), run(1, s)))), true},
		{"one in ten slow", repeat(100, cat(run(9, q), run(1, s))), false},
		{"one in ten slow, warm first", cat(run(10*keepRun, q), repeat(100, cat(run(9, q), run(1, s)))), false},
		{"at the limit", run(keepRun/2, 50*time.Microsecond), true},
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
