package clock

import (
	"testing"
	"time"
)

func TestNowFollowsTime(t *testing.T) {
	for range 100 {
		a := time.Now()
		b := Now()
		c := time.Now()
		if b.Before(a) || b.After(c) {
			t.Fatalf("clock.Now %v not within [%v, %v]", b, a, c)
		}
	}
	for range 100 {
		a := time.Now()
		b := At(Nanos())
		c := time.Now()
		if b.Before(a) || b.After(c) {
			t.Fatalf("clock.At(Nanos()) %v not within [%v, %v]", b, a, c)
		}
	}
	n0 := Nanos()
	time.Sleep(time.Millisecond)
	if d := Nanos() - n0; d < int64(time.Millisecond) {
		t.Fatalf("Nanos advanced %d ns over a 1 ms sleep", d)
	}
}

func BenchmarkNow(b *testing.B) {
	for b.Loop() {
		Now()
	}
}

func BenchmarkTimeNow(b *testing.B) {
	for b.Loop() {
		time.Now()
	}
}
