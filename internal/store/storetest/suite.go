package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/store"
)

// Run runs the conformance suite against b. Every time in it is relative
// to the clock when a test starts: Enqueue supersedes by the real clock, so
// a fixed date that real time overtakes would quietly change what a test
// checks (TestOutboxNewestWins once stopped catching a missing newest-row
// guard that way).
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		f    func(t *testing.T, b Backend)
	}{
		{"RecordNewestWins", testRecordNewestWins},
		{"RecordLaunches", testRecordLaunches},
		{"ConcurrentRecordSameSession", testConcurrentRecordSameSession},
		{"ListFiltersAndPrefix", testListFiltersAndPrefix},
		{"UsersSessions", testUsersSessions},
		{"CourseNotebooksAndLinkOpenings", testCourseNotebooksAndLinkOpenings},
		{"LaunchTrustFieldsRoundTrip", testLaunchTrustFieldsRoundTrip},
		{"Prune", testPrune},
		{"TokensAndLineItems", testTokensAndLineItems},
		{"LineItemLabels", testLineItemLabels},
		{"LinkSessions", testLinkSessions},
		{"Schema", testSchema},
		{"EnqueueSupersedesOlderUnsent", testEnqueueSupersedes},
		{"OutboxNewestWins", testOutboxNewestWins},
		{"ClaimIDsRespectsLiveLease", testClaimIDsRespectsLiveLease},
		{"LeaseExpiryAndBackoff", testLeaseExpiryAndBackoff},
		{"HandBackTakesTheAttemptBack", testHandBack},
		{"CompleteGroup", testCompleteGroup},
		{"UncertainAttemptHoldsNewerScores", testUncertainAttemptHoldsNewerScores},
		{"AGSTimestampsIncreasePerSecond", testAGSTimestamps},
		{"ConcurrentAGSTimestamps", testConcurrentAGSTimestamps},
		{"ConcurrentClaimers", testConcurrentClaimers},
		{"NewestWinsUnderConcurrency", testNewestWinsUnderConcurrency},
		{"SkewedClocksAgreeOnLeases", testSkewedClocks},
		{"Submissions", testSubmissions},
		{"Prober", testProber},
		{"OutboxStats", testOutboxStats},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, b) })
	}
}

var bg = context.Background()

// now0 is the start of a test, to the second (so that sub-second offsets
// stay inside one second, and times survive the stores' microseconds).
func now0() time.Time { return time.Now().UTC().Truncate(time.Second) }

// MkLaunch is an LTI 1.1 launch of user on link in course c1 that opened
// the link's notebook.
func MkLaunch(user, link string, at time.Time) *store.Launch {
	return &store.Launch{
		Username: user, Version: "1.1", Platform: "course-key", LTIUserID: "lti-" + user,
		ResourceLinkID: link, ResourceLinkTitle: "Title " + link, ContextID: "c1", ContextLabel: "DS100",
		ContextTitle: "Data Science", OutcomeURL: "http://lms/outcomes", SourcedID: user + ":" + link,
		Checkout: "course", Opened: "course/" + link + "/" + link + ".ipynb", OpenedFile: true,
		LaunchedAt: at, AuthState: []byte(`{"user_id":"x"}`),
	}
}

func record(t *testing.T, s store.Store, l *store.Launch) *store.Session {
	t.Helper()
	sess, err := s.RecordLaunch(bg, l)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func enqueue(t *testing.T, s store.Store, sess *store.Session, score string, at time.Time) *store.Passback {
	t.Helper()
	p := &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username, Notebook: "nb",
		Score: score, ScoreGiven: 1, ScoreMax: 1, Protocol: "lti11", TargetURL: sess.OutcomeURL,
		SourcedID: sess.SourcedID, ConsumerKey: sess.Platform, CreatedAt: at}
	if err := s.Enqueue(bg, []*store.Passback{p}); err != nil {
		t.Fatal(err)
	}
	return p
}

func claim(owner string, now time.Time) store.Claim {
	return store.Claim{Owner: owner, Now: now, LeaseUntil: now.Add(time.Minute), Limit: 100}
}

func status(t *testing.T, s store.Store, id int64) string {
	t.Helper()
	p, err := s.Passback(bg, id)
	if err != nil {
		t.Fatal(err)
	}
	return p.Status
}

func ids(ps []store.Passback) []int64 {
	var out []int64
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func testRecordNewestWins(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	first := record(t, s, MkLaunch("alice", "hw1", t0))
	newer := MkLaunch("alice", "hw1", t0.Add(time.Hour))
	newer.SourcedID = "new-sourcedid"
	sess := record(t, s, newer)
	if sess.ID != first.ID || sess.SourcedID != "new-sourcedid" || sess.LaunchCount != 2 {
		t.Fatalf("newer launch did not become current: %+v", sess)
	}
	// A late, older launch (spool ingest) stays in history only.
	older := MkLaunch("alice", "hw1", t0.Add(-time.Hour))
	older.SourcedID = "old"
	sess = record(t, s, older)
	if sess.SourcedID != "new-sourcedid" || sess.LaunchCount != 3 || sess.LaunchID != newer.ID {
		t.Fatalf("older launch took over: %+v", sess)
	}
	all, err := s.ListSessions(bg, store.SessionFilter{All: true})
	if err != nil || len(all) != 3 {
		t.Fatalf("all launches: %d %v", len(all), err)
	}
	cur, err := s.ListSessions(bg, store.SessionFilter{})
	if err != nil || len(cur) != 1 {
		t.Fatalf("current sessions: %d %v", len(cur), err)
	}
	if string(cur[0].AuthState) != `{"user_id":"x"}` || !cur[0].LaunchedAt.Equal(newer.LaunchedAt) {
		t.Fatalf("launch not kept: %q %v", cur[0].AuthState, cur[0].LaunchedAt)
	}
	l, err := s.Launch(bg, older.ID)
	if err != nil || l.SourcedID != "old" || l.SessionID != first.ID {
		t.Fatalf("older launch: %+v %v", l, err)
	}
	if _, err := s.Launch(bg, 1<<40); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing launch: %v", err)
	}
	if _, err := s.Session(bg, 1<<40); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing session: %v", err)
	}
}

func testRecordLaunches(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	var ls []*store.Launch
	for i := range 30 {
		ls = append(ls, MkLaunch(fmt.Sprintf("u%d", i%10), "hw1", t0.Add(time.Duration(i)*time.Second)))
	}
	if err := s.RecordLaunches(bg, ls); err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.ID == 0 || l.SessionID == 0 {
			t.Fatalf("ids not filled: %+v", l)
		}
	}
	cur, _ := s.ListSessions(bg, store.SessionFilter{})
	if len(cur) != 10 {
		t.Fatalf("%d sessions, want 10", len(cur))
	}
	for _, sess := range cur {
		if sess.LaunchCount != 3 || sess.LaunchID != ls[20+int(sess.Username[1]-'0')].ID {
			t.Errorf("%s: %d launches, current %d", sess.Username, sess.LaunchCount, sess.LaunchID)
		}
	}
}

// Hub logins of one student from several processes at once (or hosts): one
// session, every launch counted, the newest current.
func testConcurrentRecordSameSession(t *testing.T, b Backend) {
	s, reopen := b.Open(t)
	t0 := now0()
	handles := []store.Store{s, reopen(), reopen(), reopen()}
	const per = 10
	var wg sync.WaitGroup
	errs := make(chan error, len(handles)*per)
	for i, h := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				l := MkLaunch("alice", "hw1", t0.Add(time.Duration(j*len(handles)+i)*time.Second))
				l.SourcedID = fmt.Sprintf("s%d-%d", i, j)
				if _, err := h.RecordLaunch(bg, l); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cur, err := s.ListSessions(bg, store.SessionFilter{})
	if err != nil || len(cur) != 1 {
		t.Fatalf("sessions: %d %v", len(cur), err)
	}
	last := len(handles) - 1
	if cur[0].LaunchCount != per*len(handles) || cur[0].SourcedID != fmt.Sprintf("s%d-%d", last, per-1) {
		t.Fatalf("session after concurrent records: count %d, current %s", cur[0].LaunchCount, cur[0].SourcedID)
	}
}

func testListFiltersAndPrefix(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	for i, u := range []string{"alice", "alina", "bob", "al_x", "Alf"} {
		l := MkLaunch(u, "hw1", t0.Add(time.Duration(i)*time.Minute))
		if u == "bob" {
			l.ContextID, l.ContextLabel, l.ContextTitle = "c2", "PHYS", "Physics"
		}
		record(t, s, l)
	}
	got, _ := s.ListSessions(bg, store.SessionFilter{Course: "PHYS"})
	if len(got) != 1 || got[0].Username != "bob" {
		t.Fatalf("course filter: %+v", got)
	}
	got, _ = s.ListSessions(bg, store.SessionFilter{Since: t0.Add(90 * time.Second)})
	if len(got) != 3 || got[0].Username != "Alf" {
		t.Fatalf("since filter: %d", len(got))
	}
	got, _ = s.ListSessions(bg, store.SessionFilter{Username: "alina"})
	if len(got) != 1 || got[0].Username != "alina" {
		t.Fatalf("user filter: %+v", got)
	}
	got, _ = s.ListSessions(bg, store.SessionFilter{Limit: 2})
	if len(got) != 2 || got[0].Username != "Alf" || got[1].Username != "al_x" {
		t.Fatalf("limit, newest first: %+v", got)
	}
	us, _ := s.UserSessions(bg, "bob")
	if len(us) != 1 || us[0].ContextID != "c2" {
		t.Fatalf("user sessions: %+v", us)
	}
	names, err := s.UsernamesWithPrefix(bg, "ali")
	if err != nil || fmt.Sprint(names) != "[alice alina]" {
		t.Fatalf("prefix: %v %v", names, err)
	}
	names, _ = s.UsernamesWithPrefix(bg, "al_")
	if fmt.Sprint(names) != "[al_x]" {
		t.Fatalf("prefix with wildcard char: %v", names)
	}
	// Byte order, case-sensitive, whatever the database's locale.
	names, _ = s.UsernamesWithPrefix(bg, "")
	if fmt.Sprint(names) != "[Alf al_x alice alina bob]" {
		t.Fatalf("all names: %v", names)
	}
}

// UsersSessions is UserSessions for many users in one call: the same
// sessions in the same order per user, across more names than one query
// of a store takes, names repeated or unknown.
func testUsersSessions(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	var ls []*store.Launch
	var names []string
	for i := range 1200 {
		u := fmt.Sprintf("u%04d", i)
		names = append(names, u)
		// Every third user has two assignments, the later launched first
		// in the slice, and one of them launched twice.
		ls = append(ls, MkLaunch(u, "hw1", t0.Add(time.Duration(i)*time.Second)))
		if i%3 == 0 {
			ls = append(ls, MkLaunch(u, "hw2", t0.Add(time.Hour)), MkLaunch(u, "hw1", t0.Add(2*time.Hour)))
		}
	}
	if err := s.RecordLaunches(bg, ls); err != nil {
		t.Fatal(err)
	}
	ask := append(append([]string{"nobody"}, names...), "u0003", "u0000")
	got, err := s.UsersSessions(bg, ask)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["nobody"]; ok || len(got) != len(names) {
		t.Fatalf("%d users with sessions (want %d), nobody: %v", len(got), len(names), got["nobody"])
	}
	for _, u := range names {
		want, err := s.UserSessions(bg, u)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if i < len(got[u]) {
				g := got[u][i]
				if len(g.AuthState) != 0 {
					t.Fatalf("%s: UsersSessions filled AuthState", u)
				}
				g.AuthState, want[i].AuthState = nil, nil
				if fmt.Sprint(g) != fmt.Sprint(want[i]) {
					t.Fatalf("%s: UsersSessions %+v\nUserSessions %+v", u, g, want[i])
				}
			}
		}
		var w, g []string
		for _, x := range want {
			w = append(w, fmt.Sprintf("%d/%d/%s/%d", x.ID, x.LaunchID, x.SourcedID, x.LaunchCount))
		}
		for _, x := range got[u] {
			g = append(g, fmt.Sprintf("%d/%d/%s/%d", x.ID, x.LaunchID, x.SourcedID, x.LaunchCount))
		}
		if fmt.Sprint(w) != fmt.Sprint(g) {
			t.Fatalf("%s: UsersSessions %v, UserSessions %v", u, g, w)
		}
	}
	if n := len(got["u0003"]); n != 2 || got["u0003"][0].ResourceLinkID != "hw1" || got["u0003"][0].LaunchCount != 2 {
		t.Fatalf("u0003: %+v", got["u0003"])
	}
	if none, err := s.UsersSessions(bg, nil); err != nil || len(none) != 0 {
		t.Fatalf("no names: %v %v", none, err)
	}
}

// What a course's launches opened, and what a resource link's launches
// opened per user: the facts the resolver's coverage rule reads.
func testCourseNotebooksAndLinkOpenings(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	now := time.Now()
	a := MkLaunch("alice", "hw1", now.Add(-time.Hour))
	bl := MkLaunch("bob", "hw1", now.Add(-time.Hour))
	bl.NextSigned = true
	c := MkLaunch("bob", "hw2", now)
	folder := MkLaunch("carol", "proj", now)
	folder.Opened, folder.OpenedFile = "course/proj", false
	other := MkLaunch("dave", "hw9", now)
	other.ContextID = "c2"
	for _, l := range []*store.Launch{a, bl, c, folder, other, MkLaunch("alice", "hw1", now)} {
		record(t, s, l)
	}
	got, err := s.CourseNotebooks(bg, "course-key", "c1")
	want := []store.CourseNotebook{{Path: "course/hw1/hw1.ipynb", ResourceLinkID: "hw1"}, {Path: "course/hw2/hw2.ipynb", ResourceLinkID: "hw2"}}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CourseNotebooks = %v %v, want %v", got, err, want)
	}
	ops, err := s.LinkOpenings(bg, "course-key", "hw1")
	wantOps := []store.LinkOpening{{Username: "alice", Opened: "course/hw1/hw1.ipynb", OpenedFile: true},
		{Username: "bob", Opened: "course/hw1/hw1.ipynb", OpenedFile: true, Signed: true}}
	if err != nil || fmt.Sprint(ops) != fmt.Sprint(wantOps) {
		t.Errorf("LinkOpenings = %v %v, want %v", ops, err, wantOps)
	}
}

// The signed/unsigned mark, the ignored unsigned next, a refused link's
// reason and the list fields survive the round trip.
func testLaunchTrustFieldsRoundTrip(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	l := MkLaunch("alice", "hw1", time.Now())
	l.NextSigned, l.UnsignedNext, l.PullError = true, "/hub/user-redirect/git-pull?repo=x&urlpath=tree/x/hw2.ipynb", "nbgitpuller: no"
	l.ResultDataAccepted, l.AGSScopes, l.SubmittedAtAccepted = []string{"text", "url"}, []string{"a", "b"}, true
	sess := record(t, s, l)
	if !sess.NextSigned || sess.UnsignedNext != l.UnsignedNext || sess.PullError != l.PullError ||
		fmt.Sprint(sess.ResultDataAccepted, sess.AGSScopes) != "[text url] [a b]" || !sess.SubmittedAtAccepted {
		t.Errorf("got %+v", sess.Launch)
	}
}

func testPrune(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	old := record(t, s, MkLaunch("old", "hw1", t0.AddDate(-1, 0, 0)))
	owing := record(t, s, MkLaunch("owing", "hw1", t0.AddDate(-1, 0, 0)))
	enqueue(t, s, owing, "0.3", t0)
	po := enqueue(t, s, old, "0.3", t0)
	recent := record(t, s, MkLaunch("recent", "hw1", t0))
	// recent has an old launch in history too
	record(t, s, MkLaunch("recent", "hw1", t0.AddDate(-1, 0, 0)))
	// old's score was delivered, so it is not owed
	if got, _ := s.ClaimIDs(bg, claim("p", t0), []int64{po.ID}); len(got) != 1 {
		t.Fatal("claim")
	}
	s.Complete(bg, "p", t0, map[int64]store.Result{po.ID: {Status: store.StatusSent}})

	st, err := s.Prune(bg, t0.AddDate(0, -6, 0))
	if err != nil {
		t.Fatal(err)
	}
	if st.Sessions != 1 || st.Launches != 2 || st.Passbacks != 1 {
		t.Fatalf("prune stats: %+v", st)
	}
	if _, err := s.Session(bg, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old session kept: %v", err)
	}
	if _, err := s.Session(bg, owing.ID); err != nil {
		t.Fatalf("session owing a score was pruned: %v", err)
	}
	if _, err := s.Session(bg, recent.ID); err != nil {
		t.Fatal(err)
	}
}

func testTokensAndLineItems(t *testing.T, b Backend) {
	s, reopen := b.Open(t)
	now := time.Now()
	if _, _, ok, err := s.Token(bg, "k", now); ok || err != nil {
		t.Fatalf("token before put: %v %v", ok, err)
	}
	exp := now.Add(time.Hour).UTC().Truncate(time.Microsecond)
	if err := s.PutToken(bg, "k", "tok1", exp); err != nil {
		t.Fatal(err)
	}
	// Shared by every process.
	tok, gotExp, ok, err := reopen().Token(bg, "k", now)
	if err != nil || !ok || tok != "tok1" || !gotExp.Equal(exp) {
		t.Fatalf("token: %q %v %v %v", tok, gotExp, ok, err)
	}
	if _, _, ok, _ := s.Token(bg, "k", now.Add(2*time.Hour)); ok {
		t.Fatal("expired token handed out")
	}
	s.PutToken(bg, "k", "tok2", exp)
	if tok, _, _, _ := s.Token(bg, "k", now); tok != "tok2" {
		t.Fatalf("token not replaced: %q", tok)
	}

	l := MkLaunch("alice", "hw1", now)
	l.Version, l.LineItems = "1.3", "https://lms/lineitems"
	sess := record(t, s, l)
	p := &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: "alice", Score: "0.5",
		Protocol: "ags", LineItems: l.LineItems, ResourceLinkID: "hw1"}
	if err := s.Enqueue(bg, []*store.Passback{p}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLineItem(bg, sess.LaunchID, sess.ID, "https://lms/lineitems/7"); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Passback(bg, p.ID)
	launch, _ := s.Launch(bg, sess.LaunchID)
	if got.TargetURL != "https://lms/lineitems/7" || launch.LineItem != "https://lms/lineitems/7" {
		t.Fatalf("line item not kept: %q %q", got.TargetURL, launch.LineItem)
	}
}

// Untitled LTI 1.3 sessions' line items are listed until their label is
// known; a failed lookup ("") is listed again only once checkedBefore has
// passed it, and never erases a known label.
func testLineItemLabels(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	now := now0()
	mk := func(user, link, title, lineitem string) {
		l := MkLaunch(user, link, now)
		l.Version, l.ResourceLinkTitle, l.LineItem, l.ClientID = "1.3", title, lineitem, "client-1"
		l.AGSScopes = []string{"score", "lineitem.readonly"}
		record(t, s, l)
	}
	mk("alice", "hw1", "", "https://lms/li/1")
	mk("bob", "hw1", "", "https://lms/li/1")
	mk("alice", "hw2", "", "https://lms/li/2")
	mk("alice", "hw3", "Titled", "https://lms/li/3")
	mk("alice", "hw4", "", "")
	refs, err := s.UnlabeledLineItems(bg, now.Add(-time.Hour), 10)
	if err != nil || len(refs) != 2 || refs[0].LineItem != "https://lms/li/1" || refs[1].LineItem != "https://lms/li/2" ||
		refs[0].ClientID != "client-1" || len(refs[0].AGSScopes) != 2 {
		t.Fatalf("unlabeled: %+v %v", refs, err)
	}
	if refs, _ := s.UnlabeledLineItems(bg, now.Add(-time.Hour), 1); len(refs) != 1 {
		t.Fatalf("limit 1 gave %d", len(refs))
	}
	if err := s.SetLineItemLabels(bg, []store.LineItemLabel{{LineItem: "https://lms/li/1", Label: "Homework 1", CheckedAt: now},
		{LineItem: "https://lms/li/2", Label: "", CheckedAt: now}}); err != nil {
		t.Fatal(err)
	}
	if refs, _ := s.UnlabeledLineItems(bg, now.Add(-time.Hour), 10); len(refs) != 0 {
		t.Fatalf("after the lookups: %+v", refs)
	}
	if refs, _ := s.UnlabeledLineItems(bg, now.Add(time.Second), 10); len(refs) != 1 || refs[0].LineItem != "https://lms/li/2" {
		t.Fatalf("a day later only the failed one: %+v", refs)
	}
	s.SetLineItemLabels(bg, []store.LineItemLabel{{LineItem: "https://lms/li/1", Label: "", CheckedAt: now.Add(time.Minute)}})
	got, err := s.LineItemLabels(bg, []string{"https://lms/li/1", "https://lms/li/2", "https://lms/li/9"})
	if err != nil || len(got) != 1 || got["https://lms/li/1"] != "Homework 1" {
		t.Fatalf("labels: %v %v", got, err)
	}
}

// LinkSessions: per resource link, the newest current session whose
// launch cloned into the checkout; sessions made from the roster and other
// checkouts left out.
func testLinkSessions(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	now := now0()
	record(t, s, MkLaunch("alice", "hw1", now.Add(-time.Hour)))
	bob := record(t, s, MkLaunch("bob", "hw1", now.Add(-time.Minute)))
	record(t, s, MkLaunch("alice", "hw2", now))
	other := MkLaunch("carol", "hw3", now)
	other.Checkout = "elsewhere"
	record(t, s, other)
	roster := MkLaunch("dave", "hw4", now.Add(time.Minute))
	roster.Origin = "roster"
	record(t, s, roster)
	got, err := s.LinkSessions(bg, "course")
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{}
	for _, ss := range got {
		links[ss.ResourceLinkID] = ss.Username
	}
	if len(got) != 2 || links["hw1"] != "bob" || links["hw2"] != "alice" {
		t.Fatalf("link sessions: %v (%d rows)", links, len(got))
	}
	for _, ss := range got {
		if ss.ResourceLinkID == "hw1" && ss.ID != bob.ID {
			t.Errorf("hw1 through session %d, want bob's newest %d", ss.ID, bob.ID)
		}
	}
}

func testSchema(t *testing.T, b Backend) {
	s, reopen := b.Open(t)
	m, ok := s.(store.Migrator)
	if !ok {
		t.Fatalf("%T is not a store.Migrator", s)
	}
	st, err := m.SchemaStatus(bg)
	if err != nil || st.Version == 0 || st.Version != st.Latest || st.Backend != b.Name {
		t.Fatalf("schema after open: %+v %v", st, err)
	}
	record(t, s, MkLaunch("alice", "hw1", time.Now()))
	st, err = reopen().(store.Migrator).Migrate(bg)
	if err != nil || st.Version != st.Latest || st.Launches != 1 || st.Sessions != 1 {
		t.Fatalf("migrate again: %+v %v", st, err)
	}
}

// Journaling a newer score supersedes the session's older unsent ones at
// once, before anything claims: `passbacks list` and a sync started now
// must not see two scores owed for one session.
func testEnqueueSupersedes(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	sess := record(t, s, MkLaunch("alice", "hw1", t0))
	other := record(t, s, MkLaunch("bob", "hw1", t0))
	a := enqueue(t, s, sess, "0.5", t0)
	x := enqueue(t, s, other, "0.1", t0)
	bp := enqueue(t, s, sess, "0.9", t0.Add(time.Second))
	if st := status(t, s, a.ID); st != store.StatusSuperseded {
		t.Fatalf("older unsent score is %s after a newer one was journaled, want superseded", st)
	}
	if st := status(t, s, x.ID); st != store.StatusPending {
		t.Fatalf("another session's score is %s", st)
	}
	pending, _ := s.ListPassbacks(bg, store.PassbackFilter{Statuses: []string{store.StatusPending}})
	if fmt.Sprint(ids(pending)) != fmt.Sprint([]int64{bp.ID, x.ID}) {
		t.Fatalf("pending rows %v, want %v", ids(pending), []int64{bp.ID, x.ID})
	}
	// Two scores for one session in one batch: only the last stays.
	c := &store.Passback{SessionID: other.ID, LaunchID: other.LaunchID, Username: "bob", Score: "0.2", Protocol: "lti11", TargetURL: "u"}
	d := &store.Passback{SessionID: other.ID, LaunchID: other.LaunchID, Username: "bob", Score: "0.3", Protocol: "lti11", TargetURL: "u"}
	if err := s.Enqueue(bg, []*store.Passback{c, d}); err != nil {
		t.Fatal(err)
	}
	if d.ID <= c.ID || status(t, s, c.ID) != store.StatusSuperseded || status(t, s, x.ID) != store.StatusSuperseded ||
		status(t, s, d.ID) != store.StatusPending {
		t.Fatalf("batch: c %d %s, d %d %s", c.ID, status(t, s, c.ID), d.ID, status(t, s, d.ID))
	}
}

func testOutboxNewestWins(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	sess := record(t, s, MkLaunch("alice", "hw1", t0))
	a := enqueue(t, s, sess, "0.5", t0)
	got, err := s.ClaimIDs(bg, claim("p1", t0), []int64{a.ID})
	if err != nil || len(got) != 1 || got[0].Status != store.StatusSending || got[0].LeaseOwner != "p1" {
		t.Fatalf("claim a: %+v %v", got, err)
	}
	// While a is on the wire, the newer b must wait.
	bp := enqueue(t, s, sess, "0.9", t0.Add(time.Second))
	if st := status(t, s, a.ID); st != store.StatusSending {
		t.Fatalf("a row on the wire became %s when a newer score was journaled", st)
	}
	got, _ = s.ClaimIDs(bg, claim("p2", t0.Add(time.Second)), []int64{bp.ID})
	if len(got) != 0 {
		t.Fatalf("b claimed while a in flight: %+v", got)
	}
	// a fails transiently; it must never be sent again since b exists.
	if err := s.Complete(bg, "p1", t0, map[int64]store.Result{a.ID: {Status: store.StatusRetry, NextTry: t0}}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ClaimDue(bg, store.Claim{Owner: "sync", Now: t0.Add(time.Hour), LeaseUntil: t0.Add(2 * time.Hour), Limit: 10})
	if len(got) != 1 || got[0].ID != bp.ID {
		t.Fatalf("due claim should pick only b: %v", ids(got))
	}
	if st := status(t, s, a.ID); st != store.StatusSuperseded {
		t.Fatalf("a should be superseded, is %s", st)
	}
	// Complete by a wrong owner is ignored.
	s.Complete(bg, "intruder", t0, map[int64]store.Result{bp.ID: {Status: store.StatusRejected}})
	if st := status(t, s, bp.ID); st != store.StatusSending {
		t.Fatalf("foreign complete changed b: %s", st)
	}
	s.Complete(bg, "sync", t0, map[int64]store.Result{bp.ID: {Status: store.StatusSent}})
	pb, _ := s.Passback(bg, bp.ID)
	if pb.Status != store.StatusSent || pb.SentAt == nil || pb.Attempts != 1 {
		t.Fatalf("b after send: %+v", pb)
	}
}

// A `score` racing a `sync` on the same row: the score's claim by id must
// not take a row another live process holds under its lease.
func testClaimIDsRespectsLiveLease(t *testing.T, b Backend) {
	s, reopen := b.Open(t)
	t0 := now0()
	sess := record(t, s, MkLaunch("alice", "hw1", t0))
	a := enqueue(t, s, sess, "0.5", t0)
	if got, _ := s.ClaimDue(bg, claim("sync", t0)); len(got) != 1 {
		t.Fatal("sync did not claim")
	}
	score := reopen()
	c := claim("score", t0.Add(30*time.Second))
	c.OwnerAlive = func(string) bool { return true }
	if got, err := score.ClaimIDs(bg, c, []int64{a.ID}); err != nil || len(got) != 0 {
		t.Fatalf("claim by id took a row leased to a live owner: %v %v", ids(got), err)
	}
	if p, _ := s.Passback(bg, a.ID); p.LeaseOwner != "sync" || p.Attempts != 1 {
		t.Fatalf("row after the refused claim: owner %q, %d attempts", p.LeaseOwner, p.Attempts)
	}
	// Once the lease has run out it may be taken (and was claimable at all).
	c = claim("score", t0.Add(2*time.Minute))
	if got, _ := score.ClaimIDs(bg, c, []int64{a.ID}); len(got) != 1 || got[0].LeaseOwner != "score" {
		t.Fatalf("claim after the lease ended: %v", ids(got))
	}
}

func testLeaseExpiryAndBackoff(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	sess := record(t, s, MkLaunch("bob", "hw1", t0))
	a := enqueue(t, s, sess, "0.5", t0)
	if got, _ := s.ClaimDue(bg, claim("dead", t0)); len(got) != 1 {
		t.Fatal("first claim failed")
	}
	// Lease still valid: nobody else may take it.
	if got, _ := s.ClaimDue(bg, claim("p2", t0.Add(30*time.Second))); len(got) != 0 {
		t.Fatal("claimed a leased row")
	}
	// A dead owner's lease is void at once.
	c := claim("p2", t0.Add(30*time.Second))
	c.OwnerAlive = func(o string) bool { return o != "dead" }
	got, _ := s.ClaimDue(bg, c)
	if len(got) != 1 || got[0].ID != a.ID || got[0].Attempts != 2 {
		t.Fatalf("dead owner's row not reclaimed: %+v", got)
	}
	s.Complete(bg, "p2", t0, map[int64]store.Result{a.ID: {Status: store.StatusRetry, NextTry: t0.Add(time.Hour)}})
	if got, _ := s.ClaimDue(bg, claim("p3", t0.Add(time.Minute))); len(got) != 0 {
		t.Fatal("claimed a row before its backoff")
	}
	c = claim("p3", t0.Add(time.Minute))
	c.SkipFailedSince = t0.Add(-time.Minute)
	c.IgnoreBackoff = true
	if got, _ := s.ClaimDue(bg, c); len(got) != 0 {
		t.Fatal("a row that failed in this run was claimed again")
	}
	c.SkipFailedSince = time.Time{}
	if got, _ := s.ClaimDue(bg, c); len(got) != 1 {
		t.Fatal("--now did not ignore backoff")
	}
	// An expired lease (a live owner that overran) is taken over.
	c = claim("p4", t0.Add(3*time.Minute))
	if got, _ := s.ClaimDue(bg, c); len(got) != 1 || got[0].Attempts != 4 {
		t.Fatalf("expired lease not taken over: %+v", got)
	}
}

// A row leased and handed back unsent (Unattempted) is due again at once
// and its attempt is not counted; a real failed attempt still is. The
// count matters beyond display: an AGS send with more than one attempt
// tells the platform an earlier request may have posted this very score.
func testHandBack(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	sess := record(t, s, MkLaunch("carol", "hw1", t0))
	a := enqueue(t, s, sess, "0.5", t0)
	got, err := s.ClaimIDs(bg, claim("batch", t0), []int64{a.ID})
	if err != nil || len(got) != 1 || got[0].Attempts != 1 {
		t.Fatalf("claim: %+v %v", got, err)
	}
	if err := s.Complete(bg, "batch", t0, map[int64]store.Result{a.ID: {Status: store.StatusRetry, NextTry: t0, Unattempted: true}}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Passback(bg, a.ID); p.Status != store.StatusRetry || p.Attempts != 0 || p.LeaseOwner != "" {
		t.Fatalf("after the hand-back: status %s, %d attempts, owner %q; want retry, 0, none", p.Status, p.Attempts, p.LeaseOwner)
	}
	got, err = s.ClaimIDs(bg, claim("batch", t0.Add(time.Second)), []int64{a.ID})
	if err != nil || len(got) != 1 || got[0].Attempts != 1 {
		t.Fatalf("claimed again: %+v %v; want its first attempt", got, err)
	}
	if err := s.Complete(bg, "batch", t0, map[int64]store.Result{a.ID: {Status: store.StatusRetry, NextTry: t0}}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Passback(bg, a.ID); p.Attempts != 1 {
		t.Fatalf("a failed attempt counts: %d attempts, want 1", p.Attempts)
	}
}

// One Complete records a group of outcomes, each as its row's owner had it.
func testCompleteGroup(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	var rows []*store.Passback
	for i := range 5 {
		rows = append(rows, enqueue(t, s, record(t, s, MkLaunch(fmt.Sprintf("u%d", i), "hw1", t0)), "0.5", t0))
	}
	if got, _ := s.ClaimDue(bg, claim("w", t0)); len(got) != 5 {
		t.Fatalf("claimed %d", len(got))
	}
	res := map[int64]store.Result{
		rows[0].ID: {Status: store.StatusSent},
		rows[1].ID: {Status: store.StatusRejected, Message: "Invalid sourcedid", HTTPStatus: 200},
		rows[2].ID: {Status: store.StatusRetry, NextTry: t0.Add(time.Hour), HTTPStatus: 503},
		rows[3].ID: {Status: store.StatusSuperseded, Message: "newer at the LMS"},
		rows[4].ID: {Status: store.StatusRetry, NextTry: t0.Add(time.Hour), Uncertain: true},
	}
	if err := s.Complete(bg, "w", t0.Add(time.Second), res); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"sent", "rejected", "retry", "superseded", "retry"} {
		p, _ := s.Passback(bg, rows[i].ID)
		if p.Status != want || p.LeaseOwner != "" {
			t.Errorf("row %d: %s (owner %q), want %s", i, p.Status, p.LeaseOwner, want)
		}
		if (p.SentAt != nil) != (want == "sent") {
			t.Errorf("row %d: sent_at %v", i, p.SentAt)
		}
		if want == "retry" && (p.NextAttemptAt == nil || p.NextAttemptAt.Sub(t0) < 59*time.Minute) {
			t.Errorf("row %d: next attempt %v", i, p.NextAttemptAt)
		}
		if (p.LeaseUntil != nil) != (i == 4) {
			t.Errorf("row %d: lease_until %v (kept only after an uncertain attempt)", i, p.LeaseUntil)
		}
	}
	if p, _ := s.Passback(bg, rows[1].ID); p.LastError != "Invalid sourcedid" || p.HTTPStatus != 200 {
		t.Errorf("rejection: %+v", p)
	}
	if err := s.Complete(bg, "w", t0, map[int64]store.Result{rows[0].ID: {Status: "pending"}}); err == nil {
		t.Error("completed with status pending")
	}
}

// After an attempt whose outcome is unknown (or whose sender died), a newer
// score of the session waits until the old attempt's lease ends: the LMS
// may still process the old request, and must not do so after the new one.
func testUncertainAttemptHoldsNewerScores(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	sess := record(t, s, MkLaunch("alice", "hw1", t0))
	a := enqueue(t, s, sess, "0.5", t0)
	if got, _ := s.ClaimIDs(bg, claim("p1", t0), []int64{a.ID}); len(got) != 1 { // lease until t0+1m
		t.Fatal("claim a")
	}
	s.Complete(bg, "p1", t0, map[int64]store.Result{a.ID: {Status: store.StatusRetry, NextTry: t0, Uncertain: true}})
	bp := enqueue(t, s, sess, "0.9", t0.Add(time.Second))
	if got, _ := s.ClaimIDs(bg, claim("p2", t0.Add(30*time.Second)), []int64{bp.ID}); len(got) != 0 {
		t.Fatal("newer score sent inside the uncertain window of the older attempt")
	}
	got, _ := s.ClaimDue(bg, claim("p3", t0.Add(2*time.Minute)))
	if len(got) != 1 || got[0].ID != bp.ID {
		t.Fatalf("after the window the newer score should go: %+v", got)
	}
	if st := status(t, s, a.ID); st != store.StatusSuperseded {
		t.Fatalf("a: %s", st)
	}

	// A known failure (the LMS answered) does not hold anything.
	sess2 := record(t, s, MkLaunch("bob", "hw1", t0))
	x := enqueue(t, s, sess2, "0.1", t0)
	s.ClaimIDs(bg, claim("p1", t0), []int64{x.ID})
	s.Complete(bg, "p1", t0, map[int64]store.Result{x.ID: {Status: store.StatusRetry, NextTry: t0}})
	y := enqueue(t, s, sess2, "0.2", t0)
	if got, _ := s.ClaimIDs(bg, claim("p2", t0.Add(time.Second)), []int64{y.ID}); len(got) != 1 {
		t.Fatal("a known failure held the newer score")
	}

	// A dead sender: its own row may go again at once, a newer one waits.
	sess3 := record(t, s, MkLaunch("carol", "hw1", t0))
	d := enqueue(t, s, sess3, "0.3", t0)
	s.ClaimIDs(bg, claim("dead", t0), []int64{d.ID})
	alive := func(o string) bool { return o != "dead" }
	c := claim("p4", t0.Add(time.Second))
	c.OwnerAlive = alive
	if got, _ := s.ClaimIDs(bg, c, []int64{d.ID}); len(got) != 1 {
		t.Fatal("dead sender's own row not re-sendable")
	}
	s.Complete(bg, "p4", t0, map[int64]store.Result{d.ID: {Status: store.StatusRetry, NextTry: t0, Uncertain: true}})
	e := enqueue(t, s, sess3, "0.4", t0)
	c = claim("p5", t0.Add(2*time.Second))
	c.OwnerAlive = alive
	if got, _ := s.ClaimIDs(bg, c, []int64{e.ID}); len(got) != 0 {
		t.Fatal("newer score went while the dead sender's request may be in flight")
	}
}

func agsPassback(sess *store.Session, at time.Time) *store.Passback {
	return &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username, Score: "0.5",
		Protocol: "ags", TargetURL: "https://lms/li", CreatedAt: at}
}

// Moodle compares AGS score timestamps to the second: scores of one session
// created within the same second must still get increasing seconds.
func testAGSTimestamps(t *testing.T, b Backend) {
	s, _ := b.Open(t)
	t0 := now0()
	sess := record(t, s, MkLaunch("alice", "hw1", t0))
	base := t0.Add(123 * time.Millisecond)
	var prev time.Time
	for i := range 3 {
		p := agsPassback(sess, base.Add(time.Duration(i)*10*time.Millisecond))
		if err := s.Enqueue(bg, []*store.Passback{p}); err != nil {
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
	// Within one batch too.
	batch := []*store.Passback{agsPassback(sess, base), agsPassback(sess, base)}
	if err := s.Enqueue(bg, batch); err != nil {
		t.Fatal(err)
	}
	if !batch[0].CreatedAt.Truncate(time.Second).After(prev.Truncate(time.Second)) ||
		!batch[1].CreatedAt.Truncate(time.Second).After(batch[0].CreatedAt.Truncate(time.Second)) {
		t.Fatalf("batch: %v %v after %v", batch[0].CreatedAt, batch[1].CreatedAt, prev)
	}
	stored, _ := s.Passback(bg, batch[1].ID)
	if !stored.CreatedAt.Equal(batch[1].CreatedAt) {
		t.Fatalf("stored %v, reported %v", stored.CreatedAt, batch[1].CreatedAt)
	}
	// A score created a while later keeps its own time.
	later := t0.Add(time.Minute)
	p := agsPassback(sess, later)
	s.Enqueue(bg, []*store.Passback{p})
	if !p.CreatedAt.Equal(later) {
		t.Fatalf("a later score was moved: %v", p.CreatedAt)
	}
}

// Scores of one session journaled by several processes at once still get
// strictly increasing seconds, in the order they were journaled.
func testConcurrentAGSTimestamps(t *testing.T, b Backend) {
	s, reopen := b.Open(t)
	t0 := now0()
	sess := record(t, s, MkLaunch("alice", "hw1", t0))
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 3 {
		h := reopen()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				if err := h.Enqueue(bg, []*store.Passback{agsPassback(sess, t0.Add(200*time.Millisecond))}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, _ := s.ListPassbacks(bg, store.PassbackFilter{})
	slices.Reverse(all) // oldest first
	if len(all) != 12 {
		t.Fatalf("%d rows", len(all))
	}
	for i := 1; i < len(all); i++ {
		if !all[i].CreatedAt.Truncate(time.Second).After(all[i-1].CreatedAt.Truncate(time.Second)) {
			t.Fatalf("row %d at %v, row %d at %v: not a later second", all[i].ID, all[i].CreatedAt, all[i-1].ID, all[i-1].CreatedAt)
		}
	}
}

// Several handles (processes, hosts) claim and complete at once while
// launches are recorded: no row is handed to two claimers, all are sent.
func testConcurrentClaimers(t *testing.T, b Backend) {
	s, reopen := b.Open(t)
	t0 := now0()
	for i := range 50 {
		enqueue(t, s, record(t, s, MkLaunch(fmt.Sprintf("u%d", i), "hw1", t0)), "0.1", t0)
	}
	handles := []store.Store{s, reopen(), reopen(), reopen()}
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i, h := range handles {
		owner := fmt.Sprintf("w%d", i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				got, err := h.ClaimDue(bg, store.Claim{Owner: owner, Now: t0, LeaseUntil: t0.Add(time.Hour), Limit: 3})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				res := map[int64]store.Result{}
				for _, p := range got {
					mu.Lock()
					if prev, dup := seen[p.ID]; dup {
						errs <- fmt.Errorf("row %d claimed by %s and %s", p.ID, prev, owner)
					}
					seen[p.ID] = owner
					mu.Unlock()
					res[p.ID] = store.Result{Status: store.StatusSent}
				}
				if err := h.Complete(bg, owner, t0, res); err != nil {
					errs <- err
					return
				}
			}
		}()
		// Launch records race the claimers.
		go func() {
			defer wg.Done()
			for j := range 20 {
				if _, err := h.RecordLaunch(bg, MkLaunch(fmt.Sprintf("x%d", i), fmt.Sprintf("hw%d", j), t0)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != 50 {
		t.Fatalf("sent %d of 50", len(seen))
	}
}

// fakeLMS keeps the last score per sourcedId, like a gradebook, and
// notices two requests of one sourcedId on the wire at once.
type fakeLMS struct {
	mu      sync.Mutex
	grades  map[string]string
	onWire  map[string]int
	overlap []string
}

func (l *fakeLMS) begin(p store.Passback) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.onWire[p.SourcedID]++; l.onWire[p.SourcedID] > 1 {
		l.overlap = append(l.overlap, p.SourcedID)
	}
}

func (l *fakeLMS) end(p store.Passback, store_ bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onWire[p.SourcedID]--
	if store_ {
		l.grades[p.SourcedID] = p.Score
	}
}

// Graders and syncs on several handles journal scores for the same
// students in a known order and send them through a flaky LMS that
// sometimes stores a score and loses the reply: afterwards the LMS holds
// each student's newest score, and never had two requests of one student
// at once.
func testNewestWinsUnderConcurrency(t *testing.T, b Backend) {
	s, reopen := b.Open(t)
	t0 := now0()
	var sessions []*store.Session
	for i := range 5 {
		sessions = append(sessions, record(t, s, MkLaunch(fmt.Sprintf("u%d", i), "hw1", t0)))
	}
	lms := &fakeLMS{grades: map[string]string{}, onWire: map[string]int{}}
	send := func(h store.Store, owner string, got []store.Passback) error {
		res := map[int64]store.Result{}
		for _, p := range got {
			lms.begin(p)
			switch rand.IntN(4) {
			case 0:
				lms.end(p, false)
				res[p.ID] = store.Result{Status: store.StatusRetry, Message: "flaky", NextTry: time.Now()}
			case 1:
				// The LMS stored it but the reply was lost.
				lms.end(p, true)
				res[p.ID] = store.Result{Status: store.StatusRetry, Message: "reply lost", NextTry: time.Now()}
			default:
				lms.end(p, true)
				res[p.ID] = store.Result{Status: store.StatusSent}
			}
		}
		return h.Complete(bg, owner, time.Now(), res)
	}
	var mu sync.Mutex
	last := map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 4 {
		h := reopen()
		owner := fmt.Sprintf("g%d", g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 15 {
				sess := sessions[rand.IntN(len(sessions))]
				// Journal under the lock so "newest" is well defined.
				mu.Lock()
				score := fmt.Sprintf("0.%d%02d", g, j)
				p := &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username,
					Score: score, Protocol: "lti11", TargetURL: "u", SourcedID: sess.SourcedID}
				err := h.Enqueue(bg, []*store.Passback{p})
				last[sess.SourcedID] = score
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
				now := time.Now()
				c := store.Claim{Owner: owner, Now: now, LeaseUntil: now.Add(time.Hour), IgnoreBackoff: true, Limit: 4}
				var got []store.Passback
				if j%3 == 0 {
					got, err = h.ClaimDue(bg, c)
				} else {
					got, err = h.ClaimIDs(bg, c, []int64{p.ID})
				}
				if err == nil {
					err = send(h, owner, got)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Final syncs until nothing is left.
	for range 100 {
		now := time.Now()
		got, err := s.ClaimDue(bg, store.Claim{Owner: "final", Now: now, LeaseUntil: now.Add(time.Hour), IgnoreBackoff: true, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		if err := send(s, "final", got); err != nil {
			t.Fatal(err)
		}
	}
	open, _ := s.ListPassbacks(bg, store.PassbackFilter{Statuses: []string{"pending", "retry", "sending"}})
	if len(open) > 0 {
		t.Fatalf("%d rows left undelivered: %v", len(open), ids(open))
	}
	for sid, want := range last {
		if got := lms.grades[sid]; got != want {
			t.Errorf("%s: LMS holds %s, newest journaled is %s", sid, got, want)
		}
	}
	if len(lms.overlap) > 0 {
		t.Errorf("two requests of one student on the wire at once: %v", lms.overlap)
	}
}

// Hosts whose clocks are minutes apart agree on whose lease has ended,
// because the database's clock decides: a host with a slow clock does not
// hand out a lease that looks expired to the others, and one with a fast
// clock does not lock a row for minutes.
func testSkewedClocks(t *testing.T, b Backend) {
	if b.OneClock {
		t.Skip(b.Name + " runs on one host: every handle has the same clock")
	}
	s, reopen := b.Open(t)
	skewed := func(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
	slow := reopen(store.WithClock(skewed(-10 * time.Minute)))
	fast := reopen(store.WithClock(skewed(10 * time.Minute)))
	sess := record(t, s, MkLaunch("alice", "hw1", time.Now()))
	a := enqueue(t, s, sess, "0.5", time.Now())
	slowNow := time.Now().Add(-10 * time.Minute)
	if got, _ := slow.ClaimIDs(bg, claim("slow", slowNow), []int64{a.ID}); len(got) != 1 {
		t.Fatal("slow host did not claim")
	}
	if got, _ := s.ClaimDue(bg, claim("right", time.Now())); len(got) != 0 {
		t.Fatal("a host with the right clock took the row a slow-clocked host leased a moment ago")
	}
	s.Complete(bg, "slow", slowNow, map[int64]store.Result{a.ID: {Status: store.StatusRetry, NextTry: slowNow}})

	fastNow := time.Now().Add(10 * time.Minute)
	if got, _ := fast.ClaimDue(bg, store.Claim{Owner: "fast", Now: fastNow, LeaseUntil: fastNow.Add(time.Minute), IgnoreBackoff: true, Limit: 1}); len(got) != 1 {
		t.Fatal("fast host did not claim")
	}
	// Two minutes later by the right clock, the fast host's one-minute lease has ended.
	later := time.Now().Add(2 * time.Minute)
	if got, _ := s.ClaimDue(bg, claim("right", later)); len(got) != 1 {
		t.Fatal("a fast-clocked host's lease outlived its minute")
	}
}
