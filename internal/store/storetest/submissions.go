package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/store"
)

// testSubmissions: journal, limits, one grading per student, only the
// holder finishes, a dead grader's submission is claimed again.
func testSubmissions(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	{
		ctx := context.Background()
		now := time.Now()
		lim := store.SubmissionLimits{Now: now, Interval: time.Minute, MaxQueued: 3}
		add := func(user string, at time.Time) (*store.Submission, error) {
			sub := &store.Submission{Username: user, SessionID: 1, LaunchID: 1, Path: "c/hw1/hw1.ipynb", Content: []byte(`{"cells":[]}`)}
			l := lim
			l.Now = at
			return sub, s.AddSubmission(ctx, sub, l)
		}
		a1, err := add("alice", now)
		if err != nil || a1.ID == 0 || a1.Status != store.SubmissionQueued {
			t.Fatalf("add: %+v %v", a1, err)
		}
		var soon *store.TooSoonError
		if _, err := add("alice", now.Add(10*time.Second)); !errors.As(err, &soon) || soon.Wait < 49*time.Second {
			t.Fatalf("second within the interval: %v", err)
		}
		a2, err := add("alice", now.Add(2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := add("bob", now); err != nil {
			t.Fatal(err)
		}
		if _, err := add("carol", now); !errors.Is(err, store.ErrQueueFull) {
			t.Fatalf("fourth submission with a queue of 3: %v", err)
		}
		// one grading at a time per student: alice's first, then bob's
		alive := func(o string) bool { return o != "dead-owner" }
		c1, err := s.ClaimSubmission(ctx, "owner-1", now, alive)
		if err != nil || c1 == nil || c1.ID != a1.ID || string(c1.Content) != `{"cells":[]}` || c1.Attempts != 1 {
			t.Fatalf("first claim: %+v %v", c1, err)
		}
		c2, err := s.ClaimSubmission(ctx, "owner-1", now, alive)
		if err != nil || c2 == nil || c2.Username != "bob" {
			t.Fatalf("second claim must skip alice's queued one while hers is grading: %+v %v", c2, err)
		}
		if c3, err := s.ClaimSubmission(ctx, "owner-1", now, alive); err != nil || c3 != nil {
			t.Fatalf("third claim: %+v %v", c3, err)
		}
		// only the holder finishes it
		score, out := 2.0, 3.0
		if err := s.FinishSubmission(ctx, c1.ID, "someone-else", store.SubmissionResult{Status: store.SubmissionGraded, Score: &score, OutOf: &out, Now: now}); err != nil {
			t.Fatal(err)
		}
		if g, _ := s.Submission(ctx, c1.ID); g.Status != store.SubmissionGrading {
			t.Fatalf("a stranger finished it: %+v", g)
		}
		if err := s.FinishSubmission(ctx, c1.ID, "owner-1", store.SubmissionResult{Status: store.SubmissionGraded, Score: &score, OutOf: &out, PassbackID: 7, Now: now}); err != nil {
			t.Fatal(err)
		}
		g, _ := s.Submission(ctx, c1.ID)
		if g.Status != store.SubmissionGraded || g.Score == nil || *g.Score != 2 || g.PassbackID != 7 || g.FinishedAt == nil {
			t.Fatalf("finished: %+v", g)
		}
		// a grader that died: its grading goes back to the queue
		c4, err := s.ClaimSubmission(ctx, "dead-owner", now, alive)
		if err != nil || c4 == nil || c4.ID != a2.ID {
			t.Fatalf("claim of alice's second: %+v %v", c4, err)
		}
		c5, err := s.ClaimSubmission(ctx, "owner-2", now, alive)
		if err != nil || c5 == nil || c5.ID != a2.ID || c5.Attempts != 2 {
			t.Fatalf("a dead owner's grading must be claimed again: %+v %v", c5, err)
		}
		list, err := s.ListSubmissions(ctx, store.SubmissionFilter{Username: "alice"})
		if err != nil || len(list) != 2 || list[0].ID != a2.ID {
			t.Fatalf("list: %+v %v", list, err)
		}
	}
}
