package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/internal/testutil"
)

// TestMain doubles as `ferry bench-peer`: two-process benchmarks start
// this test binary as their far side.
func TestMain(m *testing.M) {
	if os.Getenv(benchPeerEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	testutil.VerifyMain(m)
}

func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"demo", "-n", "2"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"alice listens on tcp://127.0.0.1:", `"hello 2 from bob"`, `"hello 2 from alice"`, "msgs in", "closed",
		`reply "echo: ping"`, `subscriber got "weather.rain"`, `subscriber got "weather.sun"`,
		`puller A took "job 0"`, `puller B took "job 1"`, `"respondent 1 votes yes"`, "survey time is up",
		`node 2 got "hello from node 0"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), `subscriber got "sports.final"`) {
		t.Errorf("the subscriber got a topic it did not take:\n%s", out.String())
	}
}

func TestCLIErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"demo", "-n", "0"}, 1, "-n 0: must be in 1..1000000"},
		{[]string{"demo", "--bogus"}, 1, "flag provided but not defined"},
		{[]string{"help", "demo"}, 0, ""},
		{[]string{"demo", "--help"}, 0, ""},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(tt.args, &out, &errOut)
		if code != tt.code || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tt.args, code, errOut.String(), tt.code, tt.want)
		}
		if lines := strings.Count(errOut.String(), "\n"); lines > 1 {
			t.Errorf("%v: error is not one line: %q", tt.args, errOut.String())
		}
	}
}

// TestStressQuick runs `ferry stress --quick`: every failure class at a
// small scale must pass, and the table must say so.
func TestStressQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	defer func(w io.Writer) { stressProgress = w }(stressProgress)
	stressProgress = io.Discard
	var out, errOut bytes.Buffer
	if code := run([]string{"stress", "--quick", "--only", "churn,close,streams"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	for _, name := range []string{"churn", "close", "streams"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("table lacks %s:\n%s", name, out.String())
		}
	}
	if strings.Count(out.String(), "PASS") != 3 {
		t.Errorf("want 3 PASS:\n%s", out.String())
	}
	// --only picks exactly what it names (it once ran every scenario
	// after the last one named).
	out.Reset()
	if code := run([]string{"stress", "--quick", "--only", "close"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "close") || strings.Count(out.String(), "PASS") != 1 {
		t.Errorf("--only close: exit %d:\n%s", code, out.String())
	}
	var e2 bytes.Buffer
	if code := run([]string{"stress", "--only", "nope"}, &out, &e2); code != 1 || !strings.Contains(e2.String(), `no scenario "nope"`) {
		t.Errorf("bad --only: exit %d, %q", code, e2.String())
	}
}
