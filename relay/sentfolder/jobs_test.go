package sentfolder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pixelrelay/internal/dovecottest"
)

// statuses records what Jobs reported per queue id.
type statuses struct {
	mu  sync.Mutex
	got map[string][]string
}

func (s *statuses) set(job *Job, st string) {
	id := job.QueueID
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got == nil {
		s.got = map[string][]string{}
	}
	s.got[id] = append(s.got[id], st)
}

func (s *statuses) of(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got[id]...)
}

// waitFinal waits (generously: a loaded machine) for id's status to be
// no longer pending.
func (s *statuses) waitFinal(t *testing.T, id string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if got := s.of(id); len(got) > 0 && got[len(got)-1] != StatusPending {
			return got[len(got)-1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s still pending: %v", id, s.of(id))
	return ""
}

var fastSchedule = Schedule{MinRetry: 10 * time.Millisecond, MaxRetry: 40 * time.Millisecond, MaxAge: 300 * time.Millisecond,
	Looks: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}}

// TestJobs: a job's course for what Replace answers, run after run.
func TestJobs(t *testing.T) {
	refused := &SetupError{errors.New("IMAP login as ann@example.com refused: bad password")}
	tests := []struct {
		name     string
		expected int
		on       bool
		runs     []Result // one per run; past the end: the last again
		errs     []error
		want     string // final status
		wantRuns int    // at least
	}{
		{"all copies at the first look", 3, true, []Result{{Found: 3, Appended: true}}, nil, StatusReplaced, 1},
		{"copies filed late", 3, true, []Result{{Found: 1, Appended: true}, {Found: 0}, {Found: 2}}, nil, StatusReplaced, 3},
		{"never all filed: ends after the looks", 3, true, []Result{{Found: 1}}, nil, StatusReplaced, 3},
		{"login refused for longer than max age", 1, true, nil, []error{refused}, FailedPrefix + refused.Error(), 2},
		{"a failure, then it works", 1, true, []Result{{}, {Found: 1}}, []error{errors.New("connection refused"), nil}, StatusReplaced, 2},
		{"sent folder turned off meanwhile", 1, false, nil, nil, StatusOff, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st statuses
			var mu sync.Mutex
			runs := 0
			replace := func(_ context.Context, a Account, m Message) (Result, error) {
				mu.Lock()
				defer mu.Unlock()
				n := runs
				runs++
				if string(m.Raw) != "the message" || m.MessageID != "<id@x>" || a.Username != "ann" {
					return Result{}, errors.New("wrong job given to Replace")
				}
				var err error
				if len(tt.errs) > 0 {
					err = tt.errs[min(n, len(tt.errs)-1)]
				}
				if err != nil {
					return Result{}, err
				}
				return tt.runs[min(n, len(tt.runs)-1)], nil
			}
			dir := t.TempDir()
			j, err := Open(Options{Dir: dir, Status: st.set, Replace: replace,
				Schedule: func() Schedule { return fastSchedule },
				Account:  func(string) (Account, bool) { return Account{Username: "ann"}, tt.on }})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if err := j.Add(Job{QueueID: "Q1", Account: "default", MessageID: "<id@x>", Expected: tt.expected}, []byte("the message")); err != nil {
				t.Fatal(err)
			}
			if got := st.waitFinal(t, "Q1"); got != tt.want {
				t.Errorf("status %q, want %q (all: %v)", got, tt.want, st.of("Q1"))
			}
			mu.Lock()
			if runs < tt.wantRuns {
				t.Errorf("%d runs, want at least %d", runs, tt.wantRuns)
			}
			mu.Unlock()
			waitEmpty(t, dir)
		})
	}
}

// waitEmpty: a finished job leaves no file behind.
func waitEmpty(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		if len(ents) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("files left in the job directory: %v", ents)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJobsResume: a job waiting for a retry survives Close and runs after
// the next Open; a message file without its job (a crash inside Add) is
// removed.
func TestJobsResume(t *testing.T) {
	dir := t.TempDir()
	var st statuses
	fail := true
	var mu sync.Mutex
	replace := func(context.Context, Account, Message) (Result, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return Result{}, errors.New("connection refused")
		}
		return Result{Found: 1, Appended: true}, nil
	}
	slow := Schedule{MinRetry: time.Hour, MaxRetry: time.Hour, MaxAge: 24 * time.Hour}
	opt := Options{Dir: dir, Status: st.set, Replace: replace, Schedule: func() Schedule { return slow },
		Account: func(string) (Account, bool) { return Account{}, true }}
	j, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Add(Job{QueueID: "Q2", MessageID: "<id@x>", Expected: 1}, []byte("m")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		job, err := j.load("Q2")
		if err == nil && job.Attempts == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt saved: %v %+v", err, job)
		}
		time.Sleep(10 * time.Millisecond)
	}
	j.Close()
	os.WriteFile(filepath.Join(dir, "ORPHAN.eml"), []byte("x"), 0o600)

	mu.Lock()
	fail = false
	mu.Unlock()
	// The saved next attempt is an hour away: bring it forward as a
	// restart an hour later would find it.
	job, _ := j.load("Q2")
	job.Next = time.Now()
	j.save(job)
	j2, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if got := st.waitFinal(t, "Q2"); got != StatusReplaced {
		t.Fatalf("after restart: %q", got)
	}
	waitEmpty(t, dir)
}

// TestJobLooksAgain: with a real Dovecot, the provider files the second
// copy only after the first run; the job's later look removes it.
func TestJobLooksAgain(t *testing.T) {
	s := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{testUser: testPass}})
	if err := s.Append(testUser, testPass, "Sent", nil, testDate, relayedCopy(1)); err != nil {
		t.Fatal(err)
	}
	var st statuses
	ran := make(chan struct{}, 10)
	replace := func(ctx context.Context, a Account, m Message) (Result, error) {
		res, err := Replace(ctx, a, m)
		ran <- struct{}{}
		return res, err
	}
	sched := Schedule{MinRetry: time.Second, MaxRetry: time.Second, MaxAge: time.Hour,
		Looks: []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond, 30 * time.Second}}
	j, err := Open(Options{Dir: t.TempDir(), Status: st.set, Replace: replace, Schedule: func() Schedule { return sched },
		Account: func(string) (Account, bool) { return account(s, testPass), true }})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	msg := testMessage()
	if err := j.Add(Job{QueueID: "Q3", MessageID: msg.MessageID, Date: msg.Date, Marks: msg.Marks, Expected: 2}, msg.Raw); err != nil {
		t.Fatal(err)
	}
	<-ran
	if err := s.Append(testUser, testPass, "Sent", nil, testDate, relayedCopy(2)); err != nil {
		t.Fatal(err)
	}
	if got := st.waitFinal(t, "Q3"); got != StatusReplaced {
		t.Fatalf("status %q", got)
	}
	checkSent(t, s, "Sent", [][]byte{msg.Raw}, true)
	if strings.Join(st.of("Q3"), ",") != "pending,replaced" {
		t.Errorf("statuses %v", st.of("Q3"))
	}
}
