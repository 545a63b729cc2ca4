package passback

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/owner"
	"github.com/ltigrade/ltigrade/internal/store"
	"github.com/ltigrade/ltigrade/internal/store/storetest"
)

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func session(t *testing.T, s store.Store, user string) *store.Session {
	t.Helper()
	sess, err := s.RecordLaunch(context.Background(), &store.Launch{Username: user, Version: "1.1",
		Platform: "k", LTIUserID: user, ResourceLinkID: "hw1", OutcomeURL: "http://lms", SourcedID: user,
		LaunchedAt: time.Now(), AuthState: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func journal(t *testing.T, s store.Store, sess *store.Session, score string) int64 {
	t.Helper()
	p := &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username, Score: score,
		Protocol: "lti11", TargetURL: sess.OutcomeURL, SourcedID: sess.SourcedID}
	if err := s.Enqueue(context.Background(), []*store.Passback{p}); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// fakeLMS keeps the last score per sourcedId, like an LMS gradebook.
type fakeLMS struct {
	mu     sync.Mutex
	grades map[string]string
	sends  int
}

func (l *fakeLMS) set(p *store.Passback) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.grades == nil {
		l.grades = map[string]string{}
	}
	l.grades[p.SourcedID] = p.Score
	l.sends++
}

func TestSendNowOutcomes(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	sess := session(t, s, "alice")
	cases := []struct {
		out        Outcome
		wantStatus string
		wantTries  int
	}{
		{Outcome{Status: store.StatusSent}, store.StatusSent, 1},
		{Outcome{Status: store.StatusRejected, Message: "Invalid sourcedid"}, store.StatusRejected, 1},
		// A transient failure gets one quick second try.
		{Outcome{Status: store.StatusRetry, Message: "503"}, store.StatusRetry, 2},
		// The LMS asked for a long pause: no second try now.
		{Outcome{Status: store.StatusRetry, RetryAfter: time.Minute}, store.StatusRetry, 1},
		// A local failure (secret file mode): trying again within a second
		// cannot help, only the fix can.
		{Outcome{Status: store.StatusRetry, Local: true, Message: "secret file has mode 0644"}, store.StatusRetry, 1},
		{Outcome{Status: "bogus"}, store.StatusRetry, 2},
	}
	for i, c := range cases {
		tries := 0
		e := &Engine{Store: s, Timeout: 10 * time.Second, Sender: SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
			tries++
			return c.out
		})}
		id := journal(t, s, sess, fmt.Sprint(i))
		before := time.Now()
		got, err := e.SendNow(context.Background(), []int64{id}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		p := got[0]
		if p.Status != c.wantStatus || tries != c.wantTries {
			t.Errorf("case %d: status %s after %d tries, want %s after %d", i, p.Status, tries, c.wantStatus, c.wantTries)
		}
		if p.Status == store.StatusRetry {
			if p.NextAttemptAt == nil || !p.NextAttemptAt.After(before.Add(c.out.RetryAfter)) {
				t.Errorf("case %d: next attempt %v does not honour retry-after %v", i, p.NextAttemptAt, c.out.RetryAfter)
			}
		}
		if p.Status == store.StatusRejected && p.LastError != "Invalid sourcedid" {
			t.Errorf("case %d: rejection message lost: %q", i, p.LastError)
		}
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 12; n++ {
		d := DefaultBackoff(n)
		if d < 15*time.Second || d > time.Hour {
			t.Fatalf("attempt %d: backoff %v out of range", n, d)
		}
		if n <= 6 && d < prev/2 {
			t.Fatalf("attempt %d: backoff %v shrank from %v", n, d, prev)
		}
		prev = d
	}
}

// Many graders and syncs on one database, scores for the same students in
// a known order, a sender that is slow and flaky: afterwards the LMS must
// hold each student's newest score.
func TestNewestScoreWinsUnderConcurrency(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) { testNewestScoreWins(t, b) })
}

func testNewestScoreWins(t *testing.T, b storetest.Backend) {
	s, reopen := b.Open(t)
	var sessions []*store.Session
	for i := 0; i < 5; i++ {
		sessions = append(sessions, session(t, s, fmt.Sprintf("u%d", i)))
	}
	lms := &fakeLMS{}
	sender := SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		switch rand.IntN(4) {
		case 0:
			return Outcome{Status: store.StatusRetry, Message: "flaky"}
		case 1:
			// The LMS stored it but the reply was lost.
			lms.set(p)
			return Outcome{Status: store.StatusRetry, Message: "timeout"}
		}
		lms.set(p)
		return Outcome{Status: store.StatusSent}
	})
	var mu sync.Mutex
	last := map[string]string{}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			h := reopen()
			e := &Engine{Store: h, Sender: sender, Timeout: 5 * time.Second, Concurrency: 4,
				Backoff: func(int) time.Duration { return 0 }}
			for j := 0; j < 15; j++ {
				sess := sessions[rand.IntN(len(sessions))]
				// Journal under the lock so "newest" is well defined.
				mu.Lock()
				score := fmt.Sprintf("0.%d%02d", g, j)
				id := journal(t, h, sess, score)
				last[sess.SourcedID] = score
				mu.Unlock()
				if j%3 == 0 {
					if _, err := e.Drain(context.Background(), true); err != nil {
						t.Error(err)
					}
				} else if _, err := e.SendNow(context.Background(), []int64{id}, 50*time.Millisecond); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	// Final syncs until nothing is left (the sender keeps failing at random).
	e := &Engine{Store: s, Sender: sender, Timeout: 5 * time.Second, Backoff: func(int) time.Duration { return 0 }}
	for i := 0; i < 50; i++ {
		if _, err := e.Drain(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		open, _ := s.ListPassbacks(context.Background(), store.PassbackFilter{Statuses: []string{"pending", "retry", "sending"}})
		if len(open) == 0 {
			break
		}
	}
	for sid, want := range last {
		if got := lms.grades[sid]; got != want {
			t.Errorf("%s: LMS holds %s, newest journaled is %s", sid, got, want)
		}
	}
}

// A process that claimed rows and died (its lease owner no longer runs)
// must not delay delivery: the next drain re-sends at once.
func TestDeadOwnerRowsAreResent(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		s, _ := b.Open(t)
		testDeadOwnerRowsAreResent(t, s)
	})
}

func testDeadOwnerRowsAreResent(t *testing.T, s store.Store) {
	sess := session(t, s, "alice")
	id := journal(t, s, sess, "0.7")
	now := time.Now()
	// Simulate a crashed sender on this host: a pid that cannot exist.
	deadLocal := fmt.Sprintf("%s:%d:0", owner.Scope(), 1<<30)
	if got, err := s.ClaimIDs(context.Background(), store.Claim{Owner: deadLocal, Now: now, LeaseUntil: now.Add(time.Hour)}, []int64{id}); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	lms := &fakeLMS{}
	e := &Engine{Store: s, Sender: SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
		lms.set(p)
		return Outcome{Status: store.StatusSent}
	})}
	st, err := e.Drain(context.Background(), false)
	if err != nil || st.Sent != 1 || lms.grades["alice"] != "0.7" {
		t.Fatalf("stats %+v err %v grades %v", st, err, lms.grades)
	}
	if !OwnerAlive("other-host:1:0") {
		t.Fatal("owners on other hosts must be presumed alive")
	}
}

func TestSendBatch(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	var ps []*store.Passback
	for i := 0; i < 4; i++ {
		sess := session(t, s, fmt.Sprintf("b%d", i))
		p := &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username, Score: "0.5",
			Protocol: "lti11", TargetURL: "http://lms.example/outcomes", SourcedID: sess.SourcedID}
		if i == 1 {
			// Another LMS: the rate limit of lms.example must not hold it.
			p.TargetURL = "http://other-lms.example/outcomes"
		}
		ps = append(ps, p)
	}
	if err := s.Enqueue(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
	// Row 0 was sent by a concurrent sync before the batch got to it.
	other := &Engine{Store: s, Sender: SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
		return Outcome{Status: store.StatusSent}
	})}
	if _, err := other.SendNow(context.Background(), []int64{ps[0].ID}, 0); err != nil {
		t.Fatal(err)
	}
	calls := map[int64]int{}
	var mu sync.Mutex
	e := &Engine{Store: s, Concurrency: 2, Timeout: 5 * time.Second, Sender: SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
		mu.Lock()
		defer mu.Unlock()
		calls[p.ID]++
		switch {
		case p.ID == ps[1].ID && calls[p.ID] == 1:
			return Outcome{Status: store.StatusRetry, HTTPStatus: 503} // transient: one quick second try
		case p.ID == ps[2].ID:
			return Outcome{Status: store.StatusRetry, HTTPStatus: 429, RetryAfter: time.Minute}
		}
		return Outcome{Status: store.StatusSent}
	})}
	got := map[int64]string{}
	err := e.SendBatch(context.Background(), ps, 5*time.Second, func(p *store.Passback, o Outcome) {
		mu.Lock()
		defer mu.Unlock()
		got[p.ID] = o.Status
	})
	if err != nil {
		t.Fatal(err)
	}
	if got[ps[0].ID] != store.StatusSent || calls[ps[0].ID] != 0 {
		t.Errorf("row sent elsewhere: reported %q after %d sends", got[ps[0].ID], calls[ps[0].ID])
	}
	if got[ps[1].ID] != store.StatusSent || calls[ps[1].ID] != 2 {
		t.Errorf("transient failure: %q after %d tries, want sent after 2", got[ps[1].ID], calls[ps[1].ID])
	}
	if got[ps[2].ID] != store.StatusRetry || calls[ps[2].ID] != 1 {
		t.Errorf("rate-limited row: %q after %d tries, want retry after 1", got[ps[2].ID], calls[ps[2].ID])
	}
	// Same host as the rate-limited row: either sent before the 429 or left queued untried.
	if st := got[ps[3].ID]; st != store.StatusSent && st != store.StatusPending {
		t.Errorf("row 3: %q", st)
	}
	if len(got) != 4 {
		t.Errorf("reported %d rows of 4", len(got))
	}
}

// An attempt is bounded by the engine's timeout even where nothing else
// bounds it (Drain, SendBatch): a sender still waiting when the timeout
// ends gets its context cancelled, and the attempt counts as an uncertain
// retry, never as sent. The sender here would report "sent" only if its
// context outlived the timeout by far.
func TestAttemptOutlivingTimeoutIsNotSent(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	id := journal(t, s, session(t, s, "alice"), "0.7")
	e := &Engine{Store: s, Timeout: 50 * time.Millisecond, Backoff: func(int) time.Duration { return time.Hour },
		Sender: SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
			select {
			case <-ctx.Done():
				return Outcome{Status: store.StatusRetry, Message: ctx.Err().Error(), Uncertain: true}
			case <-time.After(10 * time.Second):
				return Outcome{Status: store.StatusSent}
			}
		})}
	st, err := e.Drain(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Passback(context.Background(), id)
	if st.Sent != 0 || p.Status != store.StatusRetry || p.LeaseUntil == nil {
		t.Fatalf("stats %+v, row %s (lease kept: %v): an attempt past passback.timeout was counted as sent", st, p.Status, p.LeaseUntil != nil)
	}
}

// slowClaims is a store whose claims by id take until the caller's context
// ends, as a claim does that is still on its way to a database server
// when the score's time budget runs out.
type slowClaims struct{ store.Store }

func (s slowClaims) ClaimIDs(ctx context.Context, c store.Claim, ids []int64) ([]store.Passback, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A score whose time budget ends during the claim is queued, not failed:
// the row is journaled and nothing was leased.
func TestSendNowBudgetEndsDuringClaim(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	id := journal(t, s, session(t, s, "alice"), "0.7")
	e := &Engine{Store: slowClaims{s}, Timeout: 50 * time.Millisecond, Sender: SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
		return Outcome{Status: store.StatusSent}
	})}
	got, err := e.SendNow(context.Background(), []int64{id}, time.Second)
	if err != nil || len(got) != 1 || got[0].Status != store.StatusPending {
		t.Fatalf("got %+v, %v: want the row queued (pending) and no error", got, err)
	}
}
