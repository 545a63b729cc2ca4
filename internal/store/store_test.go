package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// openers lists every Store implementation; a PostgreSQL one joins here.
var openers = map[string]func(t *testing.T) (Store, func() Store){
	"sqlite": func(t *testing.T) (Store, func() Store) {
		path := filepath.Join(t.TempDir(), "lti.db")
		open := func() Store {
			s, err := OpenSQLite(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	},
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func mkLaunch(user, link string, at time.Time) *Launch {
	return &Launch{
		Username: user, Version: "1.1", Platform: "course-key", LTIUserID: "lti-" + user,
		ResourceLinkID: link, ResourceLinkTitle: "Title " + link, ContextID: "c1", ContextLabel: "DS100",
		ContextTitle: "Data Science", OutcomeURL: "http://lms/outcomes", SourcedID: user + ":" + link,
		Checkout: "course", Opened: "course/" + link + "/" + link + ".ipynb", OpenedFile: true,
		LaunchedAt: at, AuthState: []byte(`{"user_id":"x"}`),
	}
}

func forEach(t *testing.T, f func(t *testing.T, s Store, reopen func() Store)) {
	for name, open := range openers {
		t.Run(name, func(t *testing.T) {
			s, reopen := open(t)
			f(t, s, reopen)
		})
	}
}

func TestRecordNewestWins(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		first, err := s.RecordLaunch(ctx, mkLaunch("alice", "hw1", t0))
		if err != nil {
			t.Fatal(err)
		}
		newer := mkLaunch("alice", "hw1", t0.Add(time.Hour))
		newer.SourcedID = "new-sourcedid"
		sess, err := s.RecordLaunch(ctx, newer)
		if err != nil {
			t.Fatal(err)
		}
		if sess.ID != first.ID || sess.SourcedID != "new-sourcedid" || sess.LaunchCount != 2 {
			t.Fatalf("newer launch did not become current: %+v", sess)
		}
		// A late, older launch (spool ingest) stays in history only.
		older := mkLaunch("alice", "hw1", t0.Add(-time.Hour))
		older.SourcedID = "old"
		sess, err = s.RecordLaunch(ctx, older)
		if err != nil {
			t.Fatal(err)
		}
		if sess.SourcedID != "new-sourcedid" || sess.LaunchCount != 3 || sess.LaunchID != newer.ID {
			t.Fatalf("older launch took over: %+v", sess)
		}
		all, err := s.ListSessions(ctx, SessionFilter{All: true})
		if err != nil || len(all) != 3 {
			t.Fatalf("all launches: %d %v", len(all), err)
		}
		cur, err := s.ListSessions(ctx, SessionFilter{})
		if err != nil || len(cur) != 1 {
			t.Fatalf("current sessions: %d %v", len(cur), err)
		}
		if string(cur[0].AuthState) != `{"user_id":"x"}` {
			t.Fatalf("auth_state not kept: %q", cur[0].AuthState)
		}
	})
}

func TestListFiltersAndPrefix(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		for i, u := range []string{"alice", "alina", "bob", "al_x"} {
			l := mkLaunch(u, "hw1", t0.Add(time.Duration(i)*time.Minute))
			if u == "bob" {
				l.ContextID, l.ContextLabel, l.ContextTitle = "c2", "PHYS", "Physics"
			}
			if _, err := s.RecordLaunch(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := s.ListSessions(ctx, SessionFilter{Course: "PHYS"})
		if len(got) != 1 || got[0].Username != "bob" {
			t.Fatalf("course filter: %+v", got)
		}
		got, _ = s.ListSessions(ctx, SessionFilter{Since: t0.Add(90 * time.Second)})
		if len(got) != 2 {
			t.Fatalf("since filter: %d", len(got))
		}
		got, _ = s.ListSessions(ctx, SessionFilter{Username: "alina"})
		if len(got) != 1 || got[0].Username != "alina" {
			t.Fatalf("user filter: %+v", got)
		}
		names, err := s.UsernamesWithPrefix(ctx, "ali")
		if err != nil || fmt.Sprint(names) != "[alice alina]" {
			t.Fatalf("prefix: %v %v", names, err)
		}
		names, _ = s.UsernamesWithPrefix(ctx, "al_")
		if fmt.Sprint(names) != "[al_x]" {
			t.Fatalf("prefix with wildcard char: %v", names)
		}
	})
}

func enqueue(t *testing.T, s Store, sess *Session, score string, at time.Time) *Passback {
	t.Helper()
	p := &Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username, Notebook: "nb",
		Score: score, ScoreGiven: 1, ScoreMax: 1, Protocol: "lti11", TargetURL: sess.OutcomeURL,
		SourcedID: sess.SourcedID, ConsumerKey: sess.Platform, CreatedAt: at}
	if err := s.Enqueue(context.Background(), []*Passback{p}); err != nil {
		t.Fatal(err)
	}
	return p
}

func claim(owner string, now time.Time) Claim {
	return Claim{Owner: owner, Now: now, LeaseUntil: now.Add(time.Minute), Limit: 100}
}

func TestOutboxNewestWins(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		sess, _ := s.RecordLaunch(ctx, mkLaunch("alice", "hw1", t0))
		a := enqueue(t, s, sess, "0.5", t0)
		got, err := s.ClaimIDs(ctx, claim("p1", t0), []int64{a.ID})
		if err != nil || len(got) != 1 || got[0].Status != StatusSending {
			t.Fatalf("claim a: %+v %v", got, err)
		}
		// While a is on the wire, the newer b must wait.
		b := enqueue(t, s, sess, "0.9", t0.Add(time.Second))
		got, _ = s.ClaimIDs(ctx, claim("p2", t0.Add(time.Second)), []int64{b.ID})
		if len(got) != 0 {
			t.Fatalf("b claimed while a in flight: %+v", got)
		}
		// a fails transiently; it must never be sent again since b exists.
		if err := s.Complete(ctx, "p1", t0, map[int64]Result{a.ID: {Status: StatusRetry, NextTry: t0}}); err != nil {
			t.Fatal(err)
		}
		got, _ = s.ClaimDue(ctx, Claim{Owner: "sync", Now: t0.Add(time.Hour), LeaseUntil: t0.Add(2 * time.Hour), Limit: 10})
		if len(got) != 1 || got[0].ID != b.ID {
			t.Fatalf("due claim should pick only b: %+v", got)
		}
		pa, _ := s.Passback(ctx, a.ID)
		if pa.Status != StatusSuperseded {
			t.Fatalf("a should be superseded, is %s", pa.Status)
		}
		// Complete by a wrong owner is ignored.
		s.Complete(ctx, "intruder", t0, map[int64]Result{b.ID: {Status: StatusRejected}})
		pb, _ := s.Passback(ctx, b.ID)
		if pb.Status != StatusSending {
			t.Fatalf("foreign complete changed b: %s", pb.Status)
		}
		s.Complete(ctx, "sync", t0, map[int64]Result{b.ID: {Status: StatusSent}})
		pb, _ = s.Passback(ctx, b.ID)
		if pb.Status != StatusSent || pb.SentAt == nil || pb.Attempts != 1 {
			t.Fatalf("b after send: %+v", pb)
		}
	})
}

func TestOutboxLeaseExpiryAndBackoff(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		sess, _ := s.RecordLaunch(ctx, mkLaunch("bob", "hw1", t0))
		a := enqueue(t, s, sess, "0.5", t0)
		if got, _ := s.ClaimDue(ctx, claim("dead", t0)); len(got) != 1 {
			t.Fatal("first claim failed")
		}
		// Lease still valid: nobody else may take it.
		if got, _ := s.ClaimDue(ctx, claim("p2", t0.Add(30*time.Second))); len(got) != 0 {
			t.Fatal("claimed a leased row")
		}
		// A dead owner's lease is void at once.
		c := claim("p2", t0.Add(30*time.Second))
		c.OwnerAlive = func(o string) bool { return o != "dead" }
		got, _ := s.ClaimDue(ctx, c)
		if len(got) != 1 || got[0].ID != a.ID || got[0].Attempts != 2 {
			t.Fatalf("dead owner's row not reclaimed: %+v", got)
		}
		s.Complete(ctx, "p2", t0, map[int64]Result{a.ID: {Status: StatusRetry, NextTry: t0.Add(time.Hour)}})
		if got, _ := s.ClaimDue(ctx, claim("p3", t0.Add(time.Minute))); len(got) != 0 {
			t.Fatal("claimed a row before its backoff")
		}
		c = claim("p3", t0.Add(time.Minute))
		c.IgnoreBackoff = true
		if got, _ := s.ClaimDue(ctx, c); len(got) != 1 {
			t.Fatal("--now did not ignore backoff")
		}
	})
}

// Two handles on one file stand for two processes: concurrent claimers must
// never both get a row, and concurrent writers never see "database is locked".
func TestConcurrentClaimers(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		var sessions []*Session
		for i := 0; i < 50; i++ {
			sess, err := s.RecordLaunch(ctx, mkLaunch(fmt.Sprintf("u%d", i), "hw1", t0))
			if err != nil {
				t.Fatal(err)
			}
			sessions = append(sessions, sess)
		}
		for _, sess := range sessions {
			enqueue(t, s, sess, "0.1", t0)
		}
		handles := []Store{s, reopen(), reopen(), reopen()}
		var mu sync.Mutex
		seen := map[int64]string{}
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i, h := range handles {
			wg.Add(1)
			go func(owner string, h Store) {
				defer wg.Done()
				for {
					got, err := h.ClaimDue(ctx, Claim{Owner: owner, Now: t0, LeaseUntil: t0.Add(time.Hour), Limit: 3})
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					res := map[int64]Result{}
					for _, p := range got {
						mu.Lock()
						if prev, dup := seen[p.ID]; dup {
							errs <- fmt.Errorf("row %d claimed by %s and %s", p.ID, prev, owner)
						}
						seen[p.ID] = owner
						mu.Unlock()
						res[p.ID] = Result{Status: StatusSent}
					}
					if err := h.Complete(ctx, owner, t0, res); err != nil {
						errs <- err
						return
					}
				}
			}(fmt.Sprintf("w%d", i), h)
			// Launch records race the claimers.
			wg.Add(1)
			go func(i int, h Store) {
				defer wg.Done()
				for j := 0; j < 20; j++ {
					if _, err := h.RecordLaunch(ctx, mkLaunch(fmt.Sprintf("x%d", i), fmt.Sprintf("hw%d", j), t0)); err != nil {
						errs <- err
					}
				}
			}(i, h)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if len(seen) != 50 {
			t.Fatalf("sent %d of 50", len(seen))
		}
	})
}

func TestPrune(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		old, _ := s.RecordLaunch(ctx, mkLaunch("old", "hw1", t0.AddDate(-1, 0, 0)))
		owing, _ := s.RecordLaunch(ctx, mkLaunch("owing", "hw1", t0.AddDate(-1, 0, 0)))
		enqueue(t, s, owing, "0.3", t0)
		enqueue(t, s, old, "0.3", t0)
		s.ClaimDue(ctx, claim("p", t0))
		s.Complete(ctx, "p", t0, map[int64]Result{})
		recent, _ := s.RecordLaunch(ctx, mkLaunch("recent", "hw1", t0))
		// recent has an old launch in history too
		s.RecordLaunch(ctx, mkLaunch("recent", "hw1", t0.AddDate(-1, 0, 0)))

		// mark old's passback sent so it is not owed
		ps, _ := s.ListPassbacks(ctx, PassbackFilter{Username: "old"})
		s.Complete(ctx, "p", t0, map[int64]Result{ps[0].ID: {Status: StatusSent}})

		st, err := s.Prune(ctx, t0.AddDate(0, -6, 0))
		if err != nil {
			t.Fatal(err)
		}
		if st.Sessions != 1 || st.Launches != 2 || st.Passbacks != 1 {
			t.Fatalf("prune stats: %+v", st)
		}
		if _, err := s.Session(ctx, old.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old session kept: %v", err)
		}
		if _, err := s.Session(ctx, owing.ID); err != nil {
			t.Fatalf("session owing a score was pruned: %v", err)
		}
		if _, err := s.Session(ctx, recent.ID); err != nil {
			t.Fatal(err)
		}
	})
}

// After an attempt whose outcome is unknown (or whose sender died), a newer
// score of the session waits until the old attempt's lease ends: the LMS
// may still process the old request, and must not do so after the new one.
func TestUncertainAttemptHoldsNewerScores(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		sess, _ := s.RecordLaunch(ctx, mkLaunch("alice", "hw1", t0))
		a := enqueue(t, s, sess, "0.5", t0)
		c := claim("p1", t0) // lease until t0+1m
		if got, _ := s.ClaimIDs(ctx, c, []int64{a.ID}); len(got) != 1 {
			t.Fatal("claim a")
		}
		s.Complete(ctx, "p1", t0, map[int64]Result{a.ID: {Status: StatusRetry, NextTry: t0, Uncertain: true}})
		b := enqueue(t, s, sess, "0.9", t0.Add(time.Second))
		if got, _ := s.ClaimIDs(ctx, claim("p2", t0.Add(30*time.Second)), []int64{b.ID}); len(got) != 0 {
			t.Fatal("newer score sent inside the uncertain window of the older attempt")
		}
		got, _ := s.ClaimDue(ctx, claim("p3", t0.Add(2*time.Minute)))
		if len(got) != 1 || got[0].ID != b.ID {
			t.Fatalf("after the window the newer score should go: %+v", got)
		}
		if pa, _ := s.Passback(ctx, a.ID); pa.Status != StatusSuperseded {
			t.Fatalf("a: %s", pa.Status)
		}

		// A known failure (the LMS answered) does not hold anything.
		sess2, _ := s.RecordLaunch(ctx, mkLaunch("bob", "hw1", t0))
		x := enqueue(t, s, sess2, "0.1", t0)
		s.ClaimIDs(ctx, claim("p1", t0), []int64{x.ID})
		s.Complete(ctx, "p1", t0, map[int64]Result{x.ID: {Status: StatusRetry, NextTry: t0}})
		y := enqueue(t, s, sess2, "0.2", t0)
		if got, _ := s.ClaimIDs(ctx, claim("p2", t0.Add(time.Second)), []int64{y.ID}); len(got) != 1 {
			t.Fatal("a known failure held the newer score")
		}

		// A dead sender: its own row may go again at once, a newer one waits.
		sess3, _ := s.RecordLaunch(ctx, mkLaunch("carol", "hw1", t0))
		d := enqueue(t, s, sess3, "0.3", t0)
		s.ClaimIDs(ctx, claim("dead", t0), []int64{d.ID})
		alive := func(o string) bool { return o != "dead" }
		c = claim("p4", t0.Add(time.Second))
		c.OwnerAlive = alive
		if got, _ := s.ClaimIDs(ctx, c, []int64{d.ID}); len(got) != 1 {
			t.Fatal("dead sender's own row not re-sendable")
		}
		s.Complete(ctx, "p4", t0, map[int64]Result{d.ID: {Status: StatusRetry, NextTry: t0, Uncertain: true}})
		e := enqueue(t, s, sess3, "0.4", t0)
		c = claim("p5", t0.Add(2*time.Second))
		c.OwnerAlive = alive
		if got, _ := s.ClaimIDs(ctx, c, []int64{e.ID}); len(got) != 0 {
			t.Fatal("newer score went while the dead sender's request may be in flight")
		}
	})
}

// Moodle compares AGS score timestamps to the second: scores of one session
// created within the same second must still get increasing seconds.
func TestAGSTimestampsIncreasePerSecond(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		sess, _ := s.RecordLaunch(ctx, mkLaunch("alice", "hw1", t0))
		base := t0.Add(123 * time.Millisecond)
		var prev time.Time
		for i := 0; i < 3; i++ {
			p := &Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: "alice", Score: "0.5",
				Protocol: "ags", TargetURL: "https://lms/li", CreatedAt: base.Add(time.Duration(i) * 10 * time.Millisecond)}
			if err := s.Enqueue(ctx, []*Passback{p}); err != nil {
				t.Fatal(err)
			}
			if i > 0 && !p.CreatedAt.Truncate(time.Second).After(prev.Truncate(time.Second)) {
				t.Fatalf("score %d at %v, previous at %v: same second", i, p.CreatedAt, prev)
			}
			prev = p.CreatedAt
		}
		if prev.Sub(base) > 3*time.Second {
			t.Fatalf("timestamps drifted %v", prev.Sub(base))
		}
		// A score created a while later keeps its own time.
		later := t0.Add(time.Minute)
		p := &Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: "alice", Score: "0.5",
			Protocol: "ags", TargetURL: "https://lms/li", CreatedAt: later}
		s.Enqueue(ctx, []*Passback{p})
		if !p.CreatedAt.Equal(later) {
			t.Fatalf("a later score was moved: %v", p.CreatedAt)
		}
	})
}

// What a course's launches opened, and what a resource link's launches
// opened per user: the facts the resolver's coverage rule reads.
func TestCourseNotebooksAndLinkOpenings(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		now := time.Now()
		a := mkLaunch("alice", "hw1", now.Add(-time.Hour))
		b := mkLaunch("bob", "hw1", now.Add(-time.Hour))
		b.NextSigned = true
		c := mkLaunch("bob", "hw2", now)
		folder := mkLaunch("carol", "proj", now)
		folder.Opened, folder.OpenedFile = "course/proj", false
		other := mkLaunch("dave", "hw9", now)
		other.ContextID = "c2"
		for _, l := range []*Launch{a, b, c, folder, other, mkLaunch("alice", "hw1", now)} {
			if _, err := s.RecordLaunch(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.CourseNotebooks(ctx, "course-key", "c1")
		want := []CourseNotebook{{"course/hw1/hw1.ipynb", "hw1"}, {"course/hw2/hw2.ipynb", "hw2"}}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("CourseNotebooks = %v %v, want %v", got, err, want)
		}
		ops, err := s.LinkOpenings(ctx, "course-key", "hw1")
		wantOps := []LinkOpening{{"alice", "course/hw1/hw1.ipynb", true, false}, {"bob", "course/hw1/hw1.ipynb", true, true}}
		if err != nil || fmt.Sprint(ops) != fmt.Sprint(wantOps) {
			t.Errorf("LinkOpenings = %v %v, want %v", ops, err, wantOps)
		}
	})
}

// The signed/unsigned mark, the ignored unsigned next and a refused link's
// reason survive the round trip.
func TestLaunchTrustFieldsRoundTrip(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		l := mkLaunch("alice", "hw1", time.Now())
		l.NextSigned, l.UnsignedNext, l.PullError = true, "/hub/user-redirect/git-pull?repo=x&urlpath=tree/x/hw2.ipynb", "nbgitpuller: no"
		sess, err := s.RecordLaunch(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if !sess.NextSigned || sess.UnsignedNext != l.UnsignedNext || sess.PullError != l.PullError {
			t.Errorf("got %+v", sess.Launch)
		}
	})
}
