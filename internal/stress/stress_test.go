package stress

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyMain(m) }

// TestQuick runs every scenario at the quick scale; each must keep its
// promises (goroutines and heap back, no corruption, no slow close).
func TestQuick(t *testing.T) {
	for _, s := range Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			sc := Quick
			if testutil.Race {
				sc.Messages /= 4 // the race detector makes this one 10x slower
			}
			r := Run(context.Background(), s, sc, func(int, int) {})
			t.Logf("%s: %v, goroutines %d -> %d, heap %d -> %d KiB", s.Class, r.Duration.Round(1e6),
				r.GoroutinesBefore, r.GoroutinesAfter, r.HeapBefore>>10, r.HeapAfter>>10)
			if !r.Passed() {
				t.Fatal(r.Err)
			}
		})
	}
}

// TestStalledScenarioFails: a scenario that stops making progress is
// cancelled and failed as stalled instead of hanging the run.
func TestStalledScenarioFails(t *testing.T) {
	s := Scenario{Name: "stuck", Run: func(ctx context.Context, _ Scale, progress func(int, int)) error {
		progress(1, 2)
		<-ctx.Done()
		return ctx.Err()
	}}
	start := time.Now()
	err := runWatched(context.Background(), s, Scale{}, func(int, int) {}, 100*time.Millisecond)
	if err == nil || !strings.HasPrefix(err.Error(), "stalled") {
		t.Fatalf("got %v, want a stall", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the stall took %v to be noticed", d)
	}
	ok := Scenario{Name: "fine", Run: func(ctx context.Context, _ Scale, progress func(int, int)) error {
		for i := range 5 {
			time.Sleep(40 * time.Millisecond)
			progress(i, 5)
		}
		return nil
	}}
	if err := runWatched(context.Background(), ok, Scale{}, func(int, int) {}, 100*time.Millisecond); err != nil {
		t.Errorf("a scenario that keeps reporting progress failed: %v", err)
	}
}
