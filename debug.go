package ferry

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
)

// debugMsgs turns on misuse reports for messages. It is set from the
// environment: FERRY_DEBUG=msg (a comma-separated list; "all" works too).
var debugMsgs atomic.Bool

func init() {
	for _, f := range strings.Split(os.Getenv("FERRY_DEBUG"), ",") {
		if f = strings.TrimSpace(f); f == "msg" || f == "all" {
			debugMsgs.Store(true)
		}
	}
}

// misuseTrace is where a message was freed or sent, for debug reports.
type misuseTrace struct {
	what  string
	stack string
}

func trace(what string) *misuseTrace {
	return &misuseTrace{what: what, stack: stack(3)}
}

func stack(skip int) string {
	pc := make([]uintptr, 32)
	n := runtime.Callers(skip, pc)
	frames := runtime.CallersFrames(pc[:n])
	var b strings.Builder
	for {
		f, more := frames.Next()
		fmt.Fprintf(&b, "\t%s\n\t\t%s:%d\n", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	return b.String()
}

// MisuseError is the value debug mode panics with.
type MisuseError struct {
	Op      string // what was attempted: "Free", "Send", "use"
	Earlier string // "freed" or "sent"
	First   string // stack of the earlier call
	Now     string // stack of this call
}

func (e *MisuseError) Error() string {
	return fmt.Sprintf("ferry: message misuse: %s of a message already %s\n%s at:\n%sthis %s at:\n%s",
		e.Op, e.Earlier, e.Earlier, e.First, e.Op, e.Now)
}

func (m *Msg) misuse(op string) {
	e := &MisuseError{Op: op, Earlier: "freed", First: "\t(unknown: debug mode was off)\n", Now: stack(3)}
	if m.state.Load() == msgSent {
		e.Earlier = "sent"
	}
	if t := m.dbg.Load(); t != nil {
		e.Earlier, e.First = t.what, t.stack
	}
	panic(e)
}
