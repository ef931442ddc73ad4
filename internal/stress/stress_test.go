package stress

import (
	"context"
	"testing"

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
