package grade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/batch"
	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/store"
)

// fakePlatform is an LTI 1.3 platform's services for these tests: token,
// NRPS memberships in pages, a line item container (list and create) and
// scores. The client assertions themselves are checked by the PyJWT
// double elsewhere.
type fakePlatform struct {
	srv      *httptest.Server
	mu       sync.Mutex
	members  []ags.Member
	pageSize int
	latency  time.Duration
	items    []ags.LineItem
	scores   map[string]map[string]float64 // line item → user → scoreGiven
	pages    int
	// itemReads counts GETs of single line items.
	itemReads int
}

func newFakePlatform(t testing.TB) *fakePlatform {
	p := &fakePlatform{pageSize: 2, scores: map[string]map[string]float64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok","token_type":"Bearer","expires_in":3600,"scope":%q}`, r.FormValue("scope"))
	})
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(p.latency)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.pages++
		from, _ := strconv.Atoi(r.URL.Query().Get("from"))
		to := min(from+p.pageSize, len(p.members))
		if to < len(p.members) {
			w.Header().Set("Link", fmt.Sprintf(`<%s/members?from=%d>; rel="next"`, p.srv.URL, to))
		}
		json.NewEncoder(w).Encode(map[string]any{"id": "x", "members": p.members[from:to]})
	})
	mux.HandleFunc("GET /lineitems", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		json.NewEncoder(w).Encode(p.items)
	})
	mux.HandleFunc("POST /lineitems", func(w http.ResponseWriter, r *http.Request) {
		var raw map[string]any
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &raw)
		if _, ok := raw["id"]; ok {
			http.Error(w, "the platform assigns the id", http.StatusBadRequest)
			return
		}
		var li ags.LineItem
		json.Unmarshal(body, &li)
		p.mu.Lock()
		li.ID = fmt.Sprintf("%s/lineitems/%d", p.srv.URL, len(p.items)+100)
		p.items = append(p.items, li)
		p.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(li)
	})
	mux.HandleFunc("GET /lineitems/{id}", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.itemReads++
		for _, it := range p.items {
			if it.ID == p.srv.URL+r.URL.Path {
				w.Header().Set("Content-Type", ags.LineItemMediaType)
				json.NewEncoder(w).Encode(it)
				return
			}
		}
		http.NotFound(w, r)
	})
	mux.HandleFunc("POST /lineitems/{id}/scores", func(w http.ResponseWriter, r *http.Request) {
		var sc struct {
			UserID     string  `json:"userId"`
			ScoreGiven float64 `json:"scoreGiven"`
		}
		json.NewDecoder(r.Body).Decode(&sc)
		li := p.srv.URL + "/lineitems/" + r.PathValue("id")
		p.mu.Lock()
		if p.scores[li] == nil {
			p.scores[li] = map[string]float64{}
		}
		p.scores[li][sc.UserID] = sc.ScoreGiven
		p.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakePlatform) score(lineitem, user string) (float64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.scores[lineitem][user]
	return v, ok
}

const issuer = "https://lms.example.edu"

func rosterWorld(t testing.TB, p *fakePlatform, usernameKey string) *Local {
	k, err := keys.Generate(2048)
	if err != nil {
		t.Fatal(err)
	}
	return local13(t, k, issuer, p.srv.URL+"/token", "username_key = "+strconv.Quote(usernameKey))
}

// local13 is a grade.Local with an SQLite store and one LTI 1.3 platform
// (issuer, token URL) whose tool key is k; extra goes into the platform's
// table.
func local13(t testing.TB, k keys.PrivateKey, issuer, tokenURL, extra string) *Local {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "lti13.pem")
	if err := keys.WriteFile(keyFile, k, false); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.toml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`database = %q
[paths]
home = "/home/jupyter-{username}"
[hub]
spool_dir = %q
[passback]
timeout = "5s"
[[lti13.platforms]]
issuer = %q
client_id = "client-1"
token_url = %q
private_key_file = %q
%s
`, filepath.Join(dir, "db"), filepath.Join(dir, "spool"), issuer, tokenURL, keyFile, extra)), 0o600)
	cfg, err := config.Load(config.Options{ConfigFlag: cfgFile, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rosters.forget()
	return &Local{Store: st, Config: cfg}
}

// launch13 records an LTI 1.3 launch of assignment hw (opening
// course/hw/hw.ipynb) for user with sub.
func launch13(t testing.TB, g *Local, p *fakePlatform, user, sub, hw string) {
	t.Helper()
	auth, _ := json.Marshal(map[string]any{ags.ClaimNRPS: map[string]any{"context_memberships_url": p.srv.URL + "/members",
		"service_versions": []string{"2.0"}}})
	_, err := g.Store.RecordLaunch(context.Background(), &store.Launch{Username: user, Version: "1.3", Platform: issuer,
		ClientID: "client-1", LTIUserID: sub, ResourceLinkID: hw, ResourceLinkTitle: "Homework " + hw, ContextID: "c1",
		ContextLabel: "DS100", LineItem: p.srv.URL + "/lineitems/" + hw, LineItems: p.srv.URL + "/lineitems",
		AGSScopes: []string{ags.ScopeScore}, Checkout: "course", Opened: "course/" + hw + "/" + hw + ".ipynb",
		OpenedFile: true, NextSigned: true, LaunchedAt: time.Now(), AuthState: auth})
	if err != nil {
		t.Fatal(err)
	}
}

var learner = []string{"http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"}

func TestRosterAndMissing(t *testing.T) {
	p := newFakePlatform(t)
	p.members = []ags.Member{
		{UserID: "sub-a", Email: "Alice@x.edu", Name: "Alice", Roles: learner},
		{UserID: "sub-b", Email: "bob@x.edu", Name: "Bob", Roles: learner},
		{UserID: "sub-c", Email: "carol@x.edu", Name: "Carol", Roles: learner},
		{UserID: "sub-t", Email: "prof@x.edu", Name: "Prof", Roles: []string{"http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"}},
		{UserID: "sub-gone", Email: "gone@x.edu", Roles: learner, Status: "Inactive"},
	}
	g := rosterWorld(t, p, "email")
	launch13(t, g, p, "alice@x.edu", "sub-a", "hw1")
	launch13(t, g, p, "bob@x.edu", "sub-b", "hw1")
	launch13(t, g, p, "bob@x.edu", "sub-b", "hw2")
	reps, err := g.Roster(context.Background(), RosterRequest{Course: "DS100"})
	if err != nil || len(reps) != 1 || reps[0].Source != "nrps" || len(reps[0].Members) != 5 {
		t.Fatalf("roster: %+v %v", reps, err)
	}
	if p.pages != 3 {
		t.Errorf("read %d pages of 2 members, want 3", p.pages)
	}
	byLMS := map[string]RosterMember{}
	for _, m := range reps[0].Members {
		byLMS[m.LMSUserID] = m
	}
	if m := byLMS["sub-c"]; m.HubUser != "carol@x.edu" || m.MappedBy != "email" || len(m.Launched) != 0 || m.Role != "Learner" {
		t.Errorf("carol: %+v", m)
	}
	if m := byLMS["sub-b"]; m.HubUser != "bob@x.edu" || m.MappedBy != "launch" || strings.Join(m.Launched, ",") != "Homework hw1,Homework hw2" {
		t.Errorf("bob: %+v", m)
	}
	miss, err := g.Roster(context.Background(), RosterRequest{Course: "DS100", Missing: true})
	if err != nil || len(miss[0].Members) != 1 || miss[0].Members[0].LMSUserID != "sub-c" {
		t.Fatalf("--missing: %+v %v", miss, err)
	}
	miss2, _ := g.Roster(context.Background(), RosterRequest{Course: "DS100", Assignment: "hw2", Missing: true})
	var got []string
	for _, m := range miss2[0].Members {
		got = append(got, m.LMSUserID)
	}
	if strings.Join(got, ",") != "sub-a,sub-c" {
		t.Errorf("--assignment hw2 --missing: %v, want alice and carol", got)
	}
}

// A student who never launched is scored through the roster: the
// assignment from other students' launches, the line item from them, the
// LMS id from the roster. The session it makes is marked as such.
func TestNeverLaunchedViaRoster(t *testing.T) {
	p := newFakePlatform(t)
	p.members = []ags.Member{{UserID: "sub-a", Email: "alice@x.edu", Roles: learner}, {UserID: "sub-c", Email: "carol@x.edu", Roles: learner}}
	g := rosterWorld(t, p, "email")
	launch13(t, g, p, "alice@x.edu", "sub-a", "hw1")
	res, err := g.Score(context.Background(), ScoreRequest{Notebook: "/home/jupyter-carol@x.edu/course/hw1/hw1.ipynb", Score: "0.7"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resolved == nil || res.Resolved.Via != "roster" || res.Passback.Status != store.StatusSent {
		t.Fatalf("result: %+v %+v", res.Resolved, res.Passback)
	}
	if v, ok := p.score(p.srv.URL+"/lineitems/hw1", "sub-c"); !ok || v != 0.7 {
		t.Fatalf("platform holds %v %v for carol", v, ok)
	}
	ss, _ := g.Store.UserSessions(context.Background(), "carol@x.edu")
	if len(ss) != 1 || ss[0].Origin != "roster" || ss[0].LTIUserID != "sub-c" {
		t.Fatalf("carol's session: %+v", ss)
	}
	// The roster session never confirms an unsigned link: it copies, it is
	// no evidence.
	ops, _ := g.Store.LinkOpenings(context.Background(), issuer, "hw1")
	for _, o := range ops {
		if o.Username == "carol@x.edu" {
			t.Errorf("the roster session counts as an opening: %+v", o)
		}
	}
	// A notebook no other launch covers: still exit 3.
	_, err = g.Score(context.Background(), ScoreRequest{Notebook: "/home/jupyter-carol@x.edu/course/hw9/x.ipynb", Score: "0.7"})
	var nf *resolve.NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("uncovered: %v", err)
	}
	// Not on the roster: exit 3 with the reason.
	_, err = g.Score(context.Background(), ScoreRequest{Notebook: "/home/jupyter-zed@x.edu/course/hw1/hw1.ipynb", Score: "0.7"})
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "has no active member that is hub user \"zed@x.edu\"") {
		t.Fatalf("not on the roster: %v", err)
	}
	// Submitting is for the student's own launches only.
	g.Config.Graders = []config.Grader{{Kind: "command", Command: []string{"true"}, Course: "DS100"}}
	_, err = g.Submit(context.Background(), "carol@x.edu", SubmitRequest{Path: "course/hw1/hw1.ipynb", Notebook: []byte(`{"cells":[]}`)})
	if code, _ := ExitCode(err); code != ExitNoSession {
		t.Fatalf("submit via roster: %v", err)
	}
}

// Two roster members that map to one hub user: exit 4 with both named.
func TestRosterCollision(t *testing.T) {
	p := newFakePlatform(t)
	p.members = []ags.Member{{UserID: "sub-a", Email: "alice@x.edu", Roles: learner},
		{UserID: "sub-x", Email: "dup@x.edu", Name: "One", Roles: learner}, {UserID: "sub-y", Email: "DUP@x.edu", Name: "Two", Roles: learner}}
	g := rosterWorld(t, p, "email")
	launch13(t, g, p, "alice@x.edu", "sub-a", "hw1")
	_, err := g.Score(context.Background(), ScoreRequest{Notebook: "/home/jupyter-dup@x.edu/course/hw1/hw1.ipynb", Score: "0.5"})
	code, _ := ExitCode(err)
	if code != ExitAmbiguous || !strings.Contains(err.Error(), "sub-x") || !strings.Contains(err.Error(), "sub-y") {
		t.Fatalf("collision: %v (exit %d)", err, code)
	}
	if _, ok := p.score(p.srv.URL+"/lineitems/hw1", "sub-x"); ok {
		t.Error("a score was sent for a collision")
	}
}

// Columns: create twice makes one; --resource-id sends to it for a roster
// member, even one who never launched anything.
func TestLineItemsCreateAndScore(t *testing.T) {
	p := newFakePlatform(t)
	p.members = []ags.Member{{UserID: "sub-a", Email: "alice@x.edu", Roles: learner}, {UserID: "sub-c", Email: "carol@x.edu", Roles: learner}}
	g := rosterWorld(t, p, "email")
	launch13(t, g, p, "alice@x.edu", "sub-a", "hw1")
	req := CreateLineItemRequest{Course: "DS100", Label: "Lab 7", Max: 10, ResourceID: "lab7"}
	a, err := g.CreateLineItem(context.Background(), req)
	if err != nil || !a.Created {
		t.Fatalf("create: %+v %v", a, err)
	}
	b, err := g.CreateLineItem(context.Background(), req)
	if err != nil || b.Created || b.ID != a.ID || len(p.items) != 1 {
		t.Fatalf("second create: %+v %v (%d items)", b, err, len(p.items))
	}
	res, err := g.Score(context.Background(), ScoreRequest{User: "carol@x.edu", Notebook: "lab7/lab7.ipynb", Score: "8", OutOf: 10, ResourceID: "lab7"})
	if err != nil || res.Passback.Status != store.StatusSent {
		t.Fatalf("score to the column: %+v %v", res, err)
	}
	if v, ok := p.score(a.ID, "sub-c"); !ok || v != 8 {
		t.Fatalf("column holds %v %v", v, ok)
	}
	if _, err := g.Score(context.Background(), ScoreRequest{User: "carol@x.edu", Notebook: "x.ipynb", Score: "1", ResourceID: "nope"}); err == nil {
		t.Fatal("an unknown resource id was accepted")
	}
}

// A batch where a third of the class never launched: every row delivered,
// those through the roster (the figure of issue 12's closing note).
func TestBatchWithNeverLaunched(t *testing.T) {
	p := newFakePlatform(t)
	p.pageSize = 100
	const n = 30
	var rows []batch.Row
	for i := range n {
		u := fmt.Sprintf("s%02d@x.edu", i)
		p.members = append(p.members, ags.Member{UserID: fmt.Sprintf("sub-%02d", i), Email: u, Roles: learner})
		rows = append(rows, batch.Row{Line: i + 2, Username: u, Notebook: "course/hw1/hw1.ipynb", Score: "0.5"})
	}
	g := rosterWorld(t, p, "email")
	for i := range n {
		if i%3 != 0 {
			launch13(t, g, p, fmt.Sprintf("s%02d@x.edu", i), fmt.Sprintf("sub-%02d", i), "hw1")
		}
	}
	rep, err := g.Batch(context.Background(), BatchRequest{Rows: rows}, nil)
	if err != nil {
		t.Fatal(err)
	}
	via := 0
	for _, r := range rep.Results {
		if r.Via == "roster" {
			via++
		}
	}
	if rep.Summary.Sent != n || via != n/3 || rep.Code() != ExitOK {
		t.Fatalf("batch: %+v, %d via roster", rep.Summary, via)
	}
	for i := range n {
		if _, ok := p.score(p.srv.URL+"/lineitems/hw1", fmt.Sprintf("sub-%02d", i)); !ok {
			t.Errorf("student %d got no score", i)
		}
	}
	if p.pages != 1 {
		t.Errorf("the roster was read %d times for one batch, want once", p.pages)
	}
}

// BenchmarkRosterFetch is the figure of issue 12: 1,000 members over 10
// pages at 50 ms per page.
func BenchmarkRosterFetch(b *testing.B) {
	t := b
	p := newFakePlatform(t)
	p.pageSize, p.latency = 100, 50*time.Millisecond
	for i := range 1000 {
		p.members = append(p.members, ags.Member{UserID: fmt.Sprintf("sub-%04d", i), Email: fmt.Sprintf("u%04d@x.edu", i), Roles: learner})
	}
	g := rosterWorld(t, p, "email")
	launch13(t, g, p, "u0000@x.edu", "sub-0000", "hw1")
	for b.Loop() {
		rosters.forget()
		reps, err := g.Roster(context.Background(), RosterRequest{Course: "DS100"})
		if err != nil || len(reps[0].Members) != 1000 {
			b.Fatal(err)
		}
	}
}

func TestInContainer(t *testing.T) {
	const c = "https://lms.example/api/lti/courses/7/line_items"
	for u, want := range map[string]bool{
		c + "/31":                    true,
		c + "/31/lineitem?type_id=3": true,
		c:                            false,
		c + "/":                      false,
		"https://lms.example/api/lti/courses/8/line_items/31":  false,
		"https://lms.example/api/lti/courses/7/line_items_x/1": false,
		"http://lms.example/api/lti/courses/7/line_items/31":   false,
		"https://evil.example/api/lti/courses/7/line_items/31": false,
		c + "/../../8/line_items/31":                           false,
		c + "/%2e%2e/x":                                        false,
	} {
		if got := inContainer(u, c); got != want {
			t.Errorf("inContainer(%s) = %v, want %v", u, got, want)
		}
	}
	if !inContainer("https://moodle.example/mod/lti/services.php/2/lineitems/5/lineitem?type_id=3", "https://moodle.example/mod/lti/services.php/2/lineitems?type_id=3") {
		t.Error("a Moodle line item is not in its container")
	}
}

// Open edX sends no resource link title: sync learns the line item's
// label and listings show it; a failed lookup is not retried at once.
func TestUntitledSessionShowsLineItemLabel(t *testing.T) {
	p := newFakePlatform(t)
	g := rosterWorld(t, p, "email")
	p.items = []ags.LineItem{{ID: p.srv.URL + "/lineitems/hw1", Label: "Homework One", ScoreMaximum: 10}}
	auth, _ := json.Marshal(map[string]any{})
	for _, hw := range []string{"hw1", "hw9"} {
		if _, err := g.Store.RecordLaunch(context.Background(), &store.Launch{Username: "alice", Version: "1.3", Platform: issuer,
			ClientID: "client-1", LTIUserID: "sub-a", ResourceLinkID: hw, ContextID: "c1",
			LineItem: p.srv.URL + "/lineitems/" + hw, AGSScopes: []string{ags.ScopeScore, ags.ScopeLineItemReadOnly},
			LaunchedAt: time.Now(), AuthState: auth}); err != nil {
			t.Fatal(err)
		}
	}
	labels := func() map[string]string {
		ss, err := g.Sessions(context.Background(), store.SessionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, s := range ss {
			out[s.ResourceLinkID] = s.Assignment()
		}
		return out
	}
	if got := labels(); got["hw1"] != "" {
		t.Fatalf("a label before any lookup: %v", got)
	}
	if _, err := g.Sync(context.Background(), SyncRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := labels(); got["hw1"] != "Homework One" || got["hw9"] != "" {
		t.Fatalf("after sync: %v", got)
	}
	reads := p.itemReads
	if _, err := g.Sync(context.Background(), SyncRequest{}); err != nil {
		t.Fatal(err)
	}
	if p.itemReads != reads {
		t.Errorf("second sync read %d line items again, want none (known, or failed within the day)", p.itemReads-reads)
	}
}

// Two assignments of other students tie for the notebook: the roster
// cannot choose, and the answer is "not found" (exit 3), never the other
// students' launches as a --launch choice (exit 4).
func TestRosterTieIsNotFound(t *testing.T) {
	p := newFakePlatform(t)
	p.members = []ags.Member{{UserID: "sub-c", Email: "carol@x.edu", Roles: learner}}
	g := rosterWorld(t, p, "email")
	launch13(t, g, p, "alice@x.edu", "sub-a", "hw1")
	auth, _ := json.Marshal(map[string]any{ags.ClaimNRPS: map[string]any{"context_memberships_url": p.srv.URL + "/members"}})
	if _, err := g.Store.RecordLaunch(context.Background(), &store.Launch{Username: "bob@x.edu", Version: "1.3", Platform: issuer,
		ClientID: "client-1", LTIUserID: "sub-b", ResourceLinkID: "hw1-late", ResourceLinkTitle: "Homework hw1 (late)", ContextID: "c1",
		LineItem: p.srv.URL + "/lineitems/hw1-late", AGSScopes: []string{ags.ScopeScore}, Checkout: "course",
		Opened: "course/hw1/hw1.ipynb", OpenedFile: true, NextSigned: true, LaunchedAt: time.Now(), AuthState: auth}); err != nil {
		t.Fatal(err)
	}
	_, err := g.Score(context.Background(), ScoreRequest{Notebook: "/home/jupyter-carol@x.edu/course/hw1/hw1.ipynb", Score: "0.7"})
	var nf *resolve.NotFoundError
	code, _ := ExitCode(err)
	if !errors.As(err, &nf) || code != ExitNoSession || !strings.Contains(nf.Roster, "cover it equally") {
		t.Fatalf("a tie: %v (code %d)", err, code)
	}
	if len(p.scores) != 0 {
		t.Fatalf("sent %v", p.scores)
	}
}

// BenchmarkBatchThirdNeverLaunched: a 300-row batch in which a third of the
// class never launched; reports the share of those rows delivered.
func BenchmarkBatchThirdNeverLaunched(b *testing.B) {
	const n = 300
	for b.Loop() {
		b.StopTimer()
		p := newFakePlatform(b)
		p.pageSize = 100
		var rows []batch.Row
		for i := range n {
			u := fmt.Sprintf("s%03d@x.edu", i)
			p.members = append(p.members, ags.Member{UserID: fmt.Sprintf("sub-%03d", i), Email: u, Roles: learner})
			rows = append(rows, batch.Row{Line: i + 2, Username: u, Notebook: "course/hw1/hw1.ipynb", Score: "0.5"})
		}
		g := rosterWorld(b, p, "email")
		for i := range n {
			if i%3 != 0 {
				launch13(b, g, p, fmt.Sprintf("s%03d@x.edu", i), fmt.Sprintf("sub-%03d", i), "hw1")
			}
		}
		b.StartTimer()
		rep, err := g.Batch(context.Background(), BatchRequest{Rows: rows}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		delivered := 0
		for i := 0; i < n; i += 3 {
			if _, ok := p.score(p.srv.URL+"/lineitems/hw1", fmt.Sprintf("sub-%03d", i)); ok {
				delivered++
			}
		}
		b.ReportMetric(float64(delivered)/float64(n/3)*100, "%never-launched-delivered")
		b.ReportMetric(float64(rep.Summary.Sent), "sent")
		b.StartTimer()
	}
}

// A roster session made from other students' launches whose nbgitpuller
// link was unsigned (confirmed only because they agree) stays unsigned: the
// student's session is no better evidence than the launches it came from.
func TestRosterSessionKeepsTheLinksSignature(t *testing.T) {
	p := newFakePlatform(t)
	p.members = []ags.Member{{UserID: "sub-a", Email: "alice@x.edu", Roles: learner}, {UserID: "sub-b", Email: "bob@x.edu", Roles: learner},
		{UserID: "sub-c", Email: "carol@x.edu", Roles: learner}}
	g := rosterWorld(t, p, "email")
	auth, _ := json.Marshal(map[string]any{ags.ClaimNRPS: map[string]any{"context_memberships_url": p.srv.URL + "/members",
		"service_versions": []string{"2.0"}}})
	for _, u := range []string{"alice", "bob"} {
		_, err := g.Store.RecordLaunch(context.Background(), &store.Launch{Username: u + "@x.edu", Version: "1.3", Platform: issuer,
			ClientID: "client-1", LTIUserID: "sub-" + u[:1], ResourceLinkID: "hw1", ResourceLinkTitle: "Homework hw1", ContextID: "c1",
			ContextLabel: "DS100", LineItem: p.srv.URL + "/lineitems/hw1", LineItems: p.srv.URL + "/lineitems",
			AGSScopes: []string{ags.ScopeScore}, Checkout: "course", Opened: "course/hw1/hw1.ipynb",
			OpenedFile: true, NextSigned: false, LaunchedAt: time.Now(), AuthState: auth})
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := g.Score(context.Background(), ScoreRequest{Notebook: "/home/jupyter-carol@x.edu/course/hw1/hw1.ipynb", Score: "0.7"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resolved == nil || res.Resolved.Via != "roster" {
		t.Fatalf("not resolved via roster: %+v", res.Resolved)
	}
	ss, err := g.Store.UserSessions(context.Background(), "carol@x.edu")
	if err != nil || len(ss) != 1 {
		t.Fatalf("carol's sessions: %+v %v", ss, err)
	}
	if ss[0].NextSigned || ss[0].Origin != "roster" {
		t.Fatalf("roster session signed=%v origin=%q, from unsigned launches", ss[0].NextSigned, ss[0].Origin)
	}
	if _, ok := p.score(p.srv.URL+"/lineitems/hw1", "sub-c"); !ok {
		t.Fatal("the score did not reach hw1 for carol")
	}
}
