package ferry

import "time"

// Internals the external tests look at.

// RoleKept counts the times a receiver kept s's reading role while it
// handled what it read (lendAway).
func RoleKept(s *Socket) uint64 { return s.lend.kept.Load() }

// RoleAway reports whether s's reading role is with a receiver that is
// away handling what it read.
func RoleAway(s *Socket) bool {
	p := s.lend.lendp.Load()
	return p != nil && p.lst.Load() == lendAway
}

// SetKeepQuick sets how long a Serve worker's request may take to count
// as quick, for workers started after it (a slow race-enabled build
// would rarely count any as quick); restore puts it back.
func SetKeepQuick(d time.Duration) (restore func()) {
	old := keepQuick.Swap(int64(d))
	return func() { keepQuick.Store(old) }
}

// BlockOf returns m's pooled storage (nil if none), as an opaque handle
// for BlockState, and the generation m holds it at.
func BlockOf(m *Msg) (any, uint32) {
	if m.blk == nil {
		return nil, 0
	}
	return m.blk, m.gen
}

// BlockState returns the current generation of a block from BlockOf and
// the number of its holders beyond the first (fan-out copies sharing it).
func BlockState(b any) (gen uint32, refs int32) {
	bl := b.(*block)
	return bl.gen.Load(), bl.refs.Load()
}
