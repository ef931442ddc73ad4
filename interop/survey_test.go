package interop

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/ferrymq/ferry"
	"github.com/ferrymq/ferry/internal/testutil"
	"github.com/ferrymq/ferry/protocol/respondent"
	"github.com/ferrymq/ferry/protocol/surveyor"
)

// TestSurveyorToNNGRespondents: a ferry SURVEYOR and three nngcat
// --respondent0 processes, each answering with its own --data.
func TestSurveyorToNNGRespondents(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "ipc"} {
		t.Run(scheme, func(t *testing.T) {
			s, err := surveyor.New(ferry.SocketConfig{SurveyTime: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			l, err := s.Listen(freeAddr(t, scheme))
			if err != nil {
				t.Fatal(err)
			}
			var procs []*testutil.Proc
			for i := range 3 {
				procs = append(procs, testutil.StartNNGCat(t, "--respondent0", "--dial", l.URL(), "--quoted", "--data", fmt.Sprintf("answer %d", i)))
			}
			ctx := testutil.Ctx(t, 20*time.Second)
			for deadline := time.Now().Add(10 * time.Second); s.Stats().PipesOpen < 3; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("respondents did not connect")
				}
			}
			if err := s.SendBytes(ctx, []byte("what is your answer?")); err != nil {
				t.Fatal(err)
			}
			var got []string
			for range 3 {
				b, err := s.RecvBytes(ctx, nil)
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				got = append(got, string(b))
			}
			sort.Strings(got)
			if fmt.Sprint(got) != "[answer 0 answer 1 answer 2]" {
				t.Fatalf("answers %q", got)
			}
			for _, p := range procs {
				line, err := p.Stdout.ReadString('\n')
				if err != nil || line != "\"what is your answer?\"\n" {
					t.Fatalf("nngcat printed %q %v", line, err)
				}
			}
		})
	}
}

// TestNNGSurveyorToFerry: nngcat --surveyor0 against ferry respondents
// run by Serve.
func TestNNGSurveyorToFerry(t *testing.T) {
	testutil.NoLeaks(t)
	for _, scheme := range []string{"tcp", "ipc"} {
		t.Run(scheme, func(t *testing.T) {
			r, err := respondent.New(ferry.SocketConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			l, err := r.Listen(freeAddr(t, scheme))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() {
				served <- r.Serve(ctx, func(_ context.Context, q, a *ferry.Msg) error {
					a.SetBody(append([]byte("ferry answers "), q.Body...))
					return nil
				}, ferry.ServeConfig{Workers: 2})
			}()
			defer func() { cancel(); <-served }()
			p := testutil.StartNNGCat(t, "--surveyor0", "--dial", l.URL(), "--quoted", "--data", "poll")
			line, err := p.Stdout.ReadString('\n')
			if err != nil || line != "\"ferry answers poll\"\n" {
				p.Kill()
				t.Fatalf("nngcat printed %q %v (%s)", line, err, p.Stderr())
			}
			p.Kill()
		})
	}
}
