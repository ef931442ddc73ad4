//go:build !race

package testutil

// Race is true when the race detector is on.
const Race = false
