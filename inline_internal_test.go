package ferry

import (
	"context"
	"testing"
	"time"
)

// TestKeepHint: a Serve worker keeps the reading role after keepRun/2
// quick requests; a slow one that kept input waiting costs keepSlow, so
// an odd stall does not end it, a few slow ones in a row do, and handlers
// slow one time in ten never keep it; a slow one nobody waited for counts
// for nothing.
func TestKeepHint(t *testing.T) {
	// q quick, s slow with input waiting when the worker came back, u slow
	// with none.
	const q, s, u = 10 * time.Microsecond, time.Millisecond, time.Millisecond + 1
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
		{"one in two slow, nobody waiting", cat(run(keepRun, q), repeat(100, cat(run(1, q), run(1, u)))), true},
		{"slow, nobody waiting, from the start", run(10*keepRun, u), false},
		{"slow, nobody waiting, then one in ten slow", cat(run(keepRun, q), run(100, u), repeat(100, cat(run(9, q), run(1, s)))), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newKeepHint()
			for _, d := range tt.seq {
				h.handled(d)
				if h.judge {
					h.judged(d == s)
				}
			}
			ctx := context.WithValue(context.Background(), keepKey{}, h)
			if got := hintOf(ctx).keeps(); got != tt.want {
				t.Errorf("keeps = %v, want %v", got, tt.want)
			}
		})
	}
	if hintOf(context.Background()).keeps() {
		t.Error("a context without a hint keeps the role")
	}
}
