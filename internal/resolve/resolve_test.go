package resolve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/paths"
	"github.com/ltigrade/ltigrade/internal/store"
)

// t0 only orders launches against each other; nothing compares it with
// the real clock.
var t0 = time.Now().UTC()

func sess(id int64, link, checkout, opened string, file bool, age time.Duration) store.Session {
	return store.Session{ID: id, Launch: store.Launch{ID: id * 10, Username: "alice", Platform: "k",
		ContextID: "c1", ResourceLinkID: link, ResourceLinkTitle: link, Checkout: checkout, Opened: opened,
		OpenedFile: file, NextSigned: true, LaunchedAt: t0.Add(-age)}, LaunchID: id * 10}
}

// knownNotebooks is what the launches of course c1 opened, as the store
// would report it for the given sessions.
func knownNotebooks(ss ...store.Session) Facts {
	f := Facts{Notebooks: map[CourseKey][]store.CourseNotebook{}, Openings: map[LinkKey][]store.LinkOpening{}}
	for _, s := range ss {
		k := CourseKey{s.Platform, s.ContextID}
		if s.OpenedFile {
			f.Notebooks[k] = append(f.Notebooks[k], store.CourseNotebook{Path: s.Opened, ResourceLinkID: s.ResourceLinkID})
		}
	}
	return f
}

func TestBest(t *testing.T) {
	hw1 := sess(1, "hw1", "materials", "materials/hw1/hw1.ipynb", true, 3*time.Hour)
	hw2 := sess(2, "hw2", "materials", "materials/hw2/hw2.ipynb", true, 2*time.Hour)
	proj := sess(3, "proj", "materials", "materials/project", false, time.Hour)
	deep := sess(4, "deep", "materials", "materials/project/part2", false, 4*time.Hour)
	other := sess(5, "other", "other-repo", "", false, 0)
	all := []store.Session{hw1, hw2, proj, deep, other}
	cases := []struct {
		rel      string
		sessions []store.Session
		wantID   int64
		wantHow  string
		wantAmb  bool
		wantNone bool
	}{
		{"materials/hw1/hw1.ipynb", all, 1, MatchNotebook, false, false},
		{"materials/hw1/sub/x.ipynb", all, 1, MatchFolder, false, false},
		{"materials/project/a.ipynb", all, 3, MatchFolder, false, false},
		// deepest opened folder wins over a shallower one
		{"materials/project/part2/b.ipynb", all, 4, MatchFolder, false, false},
		{"other-repo/x.ipynb", all, 5, MatchCheckout, false, false},
		// the checkout contains it, but no launch opened the checkout
		// root: issue 8 removed the checkout fallback
		{"materials/README.ipynb", all, 0, "", false, true},
		{"elsewhere/x.ipynb", all, 0, "", false, true},
		// the folder itself is not "inside" the folder; the checkout name alone is not a notebook
		{"materials", all, 0, "", false, true},
		// a prefix that is not a path component must not match
		{"materials/hw1x/hw1.ipynb", []store.Session{hw1}, 0, "", false, true},
		// alice launched only Homework 1: Homework 2's notebook is not hers to score
		{"materials/hw2/hw2.ipynb", []store.Session{hw1}, 0, "", false, true},
	}
	for _, c := range cases {
		best, _, ok, err := Best(c.sessions, c.rel, knownNotebooks(all...))
		var amb *AmbiguousError
		switch {
		case c.wantAmb:
			if !errors.As(err, &amb) {
				t.Errorf("%s: want ambiguous, got %+v %v", c.rel, best, err)
			}
		case c.wantNone:
			if ok || err != nil {
				t.Errorf("%s: want no match, got %+v %v", c.rel, best, err)
			}
		default:
			if !ok || err != nil || best.Session.ID != c.wantID || best.How != c.wantHow {
				t.Errorf("%s: got session %d by %s (%v), want %d by %s", c.rel, best.Session.ID, best.How, err, c.wantID, c.wantHow)
			}
		}
	}
}

// Within one resource link the newest launch wins; sessions of the same
// assignment never make a tie.
func TestBestSameAssignmentNewestWins(t *testing.T) {
	a := sess(1, "hw1", "m", "m/hw1.ipynb", true, time.Hour)
	b := sess(2, "hw1", "m", "m/hw1.ipynb", true, 0)
	b.LTIUserID = "another-lti-id"
	best, _, ok, err := Best([]store.Session{a, b}, "m/hw1.ipynb", knownNotebooks(a, b))
	if !ok || err != nil || best.Session.ID != 2 {
		t.Fatalf("got %+v %v", best, err)
	}
}

// The table of docs/resolve.md, row by row.
func TestCoverage(t *testing.T) {
	sib := []store.CourseNotebook{{Path: "c/hw/hw1.ipynb", ResourceLinkID: "hw1"}, {Path: "c/hw/hw2.ipynb", ResourceLinkID: "hw2"}}
	noLink := sess(1, "x", "", "", false, 0)
	refused := noLink
	refused.PullError = "nbgitpuller: bad"
	for _, c := range []struct {
		name     string
		s        store.Session
		course   []store.CourseNotebook
		wantKind string
		wantPath string
	}{
		{"opened a folder", sess(1, "p", "c", "c/project", false, 0), nil, CoversFolder, "c/project/"},
		{"notebook in a subfolder", sess(1, "hw1", "c", "c/hw1/hw1.ipynb", true, 0), nil, CoversFolder, "c/hw1/"},
		{"notebook in a subfolder it shares with another assignment", sess(1, "hw1", "c", "c/hw/hw1.ipynb", true, 0), sib, CoversNotebook, "c/hw/hw1.ipynb"},
		{"notebook in a subfolder, only itself known", sess(1, "hw1", "c", "c/hw/hw1.ipynb", true, 0), sib[:1], CoversFolder, "c/hw/"},
		{"notebook at the checkout root (flat)", sess(1, "hw1", "flat", "flat/hw1.ipynb", true, 0), nil, CoversNotebook, "flat/hw1.ipynb"},
		{"the checkout root", sess(1, "syl", "c", "c", false, 0), nil, CoversCheckout, "c/"},
		{"no urlpath", sess(1, "syl", "c", "", false, 0), nil, CoversCheckout, "c/"},
		{"notebook outside its checkout", sess(1, "hw1", "c", "elsewhere/a/x.ipynb", true, 0), nil, CoversNotebook, "elsewhere/a/x.ipynb"},
		{"no nbgitpuller link", noLink, nil, CoversNothing, ""},
		{"a refused nbgitpuller link", refused, nil, CoversNothing, ""},
	} {
		got := Coverage(c.s, c.course)
		if got.Kind != c.wantKind || got.Path != c.wantPath || got.Why == "" {
			t.Errorf("%s: covers %+v, want %s %q", c.name, got, c.wantKind, c.wantPath)
		}
	}
}

// The flat layout of the issue: flat/hw1.ipynb opened, flat/hw2.ipynb
// scored, must not land in Homework 1.
func TestFlatLayoutCoversTheNotebookOnly(t *testing.T) {
	hw1 := sess(1, "hw1", "flat", "flat/hw1.ipynb", true, 0)
	for _, rel := range []string{"flat/hw2.ipynb", "flat/sub/x.ipynb"} {
		if best, _, ok, err := Best([]store.Session{hw1}, rel, knownNotebooks(hw1)); ok || err != nil {
			t.Errorf("%s: got %+v %v, want no match", rel, best, err)
		}
	}
	if best, _, ok, _ := Best([]store.Session{hw1}, "flat/hw1.ipynb", knownNotebooks(hw1)); !ok || best.How != MatchNotebook {
		t.Errorf("flat/hw1.ipynb: %+v", best)
	}
}

// A folder holding several assignments: the course's other launches teach
// ltigrade that hw/ is not Homework 1's alone.
func TestSharedFolderCoversNotebookOnly(t *testing.T) {
	aliceHW1 := sess(1, "hw1", "c", "c/hw/hw1.ipynb", true, 0)
	bobHW2 := sess(2, "hw2", "c", "c/hw/hw2.ipynb", true, 0)
	bobHW2.Username = "bob"
	f := knownNotebooks(aliceHW1, bobHW2)
	for _, rel := range []string{"c/hw/hw2.ipynb", "c/hw/extra.ipynb"} {
		if best, _, ok, err := Best([]store.Session{aliceHW1}, rel, f); ok || err != nil {
			t.Errorf("%s: got %+v %v, want no match", rel, best, err)
		}
	}
}

// A launch that opened the checkout root covers the checkout, but never a
// notebook another assignment of the course opened.
func TestCheckoutLaunchNeverTakesAnotherAssignmentsNotebook(t *testing.T) {
	syl := sess(1, "syl", "c", "c", false, 0)
	bobHW2 := sess(2, "hw2", "c", "c/hw2/hw2.ipynb", true, 0)
	f := knownNotebooks(syl, bobHW2)
	if best, _, ok, err := Best([]store.Session{syl}, "c/README.ipynb", f); !ok || err != nil || best.How != MatchCheckout {
		t.Errorf("README: %+v %v", best, err)
	}
	if best, _, ok, err := Best([]store.Session{syl}, "c/hw2/hw2.ipynb", f); ok || err != nil {
		t.Errorf("hw2 notebook went to the syllabus: %+v %v", best, err)
	}
}

// Notebook beats folder, even when the folder launch is another
// assignment (here of a second course sharing the checkout) and covers
// the notebook: a swap of the two ranks fails this test.
func TestNotebookRanksAboveFolder(t *testing.T) {
	nb := sess(1, "hw1", "m", "m/hw1/hw1.ipynb", true, time.Hour)
	folder := sess(2, "hw1-folder", "m", "m/hw1", false, 0)
	folder.ContextID = "c2"
	f := knownNotebooks(nb, folder)
	best, rest, ok, err := Best([]store.Session{folder, nb}, "m/hw1/hw1.ipynb", f)
	if !ok || err != nil || best.Session.ID != 1 || best.How != MatchNotebook || len(rest) != 1 || rest[0].How != MatchFolder {
		t.Fatalf("got %+v rest %+v %v", best, rest, err)
	}
	// And the folder still takes the rest of its folder.
	best, _, ok, err = Best([]store.Session{folder}, "m/hw1/extra.ipynb", f)
	if !ok || err != nil || best.Session.ID != 2 || best.How != MatchFolder {
		t.Fatalf("got %+v %v", best, err)
	}
}

// Folder beats checkout: a swap of those ranks fails this test.
func TestFolderRanksAboveCheckout(t *testing.T) {
	syl := sess(1, "syl", "m", "m", false, 0)
	proj := sess(2, "proj", "m", "m/project", false, time.Hour)
	best, _, ok, err := Best([]store.Session{syl, proj}, "m/project/a.ipynb", knownNotebooks(syl, proj))
	if !ok || err != nil || best.Session.ID != 2 || best.How != MatchFolder {
		t.Fatalf("got %+v %v", best, err)
	}
}

// §3 of issue 8: an LTI 1.3 link from the unsigned login initiation counts
// only where other launches of the same resource link confirm it.
func TestUnsignedLinkNeedsConfirmation(t *testing.T) {
	forged := sess(1, "hw1", "c", "c/hw2/hw2.ipynb", true, 0)
	forged.NextSigned = false
	key := LinkKey{"k", "hw1"}
	for _, c := range []struct {
		name     string
		openings []store.LinkOpening
		wantOK   bool
		wantWhy  string
	}{
		{"nothing confirms it", []store.LinkOpening{{Username: "alice", Opened: "c/hw2/hw2.ipynb", OpenedFile: true}}, false, "no other user's launch"},
		{"a signed launch disagrees", []store.LinkOpening{{Username: "bob", Opened: "c/hw1/hw1.ipynb", OpenedFile: true, Signed: true},
			{Username: "carol", Opened: "c/hw2/hw2.ipynb", OpenedFile: true}}, false, "a signed launch"},
		{"another user's launch agrees", []store.LinkOpening{{Username: "bob", Opened: "c/hw2/hw2.ipynb", OpenedFile: true}}, true, ""},
	} {
		f := knownNotebooks(forged)
		f.Openings[key] = c.openings
		best, _, ok, err := Best([]store.Session{forged}, "c/hw2/hw2.ipynb", f)
		var amb *AmbiguousError
		if c.wantOK {
			if !ok || err != nil || best.Session.ID != 1 {
				t.Errorf("%s: %+v %v", c.name, best, err)
			}
			continue
		}
		if !errors.As(err, &amb) || amb.Unverified == "" || !strings.Contains(amb.Error(), c.wantWhy) || !strings.Contains(amb.Hint(), "signed") {
			t.Errorf("%s: got %+v %v, want an unverified ambiguity mentioning %q", c.name, best, err, c.wantWhy)
		}
	}
}

type fakeStore map[string][]store.Session

func (f fakeStore) UserSessions(_ context.Context, u string) ([]store.Session, error) {
	return f[u], nil
}

func (f fakeStore) CourseNotebooks(_ context.Context, platform, contextID string) ([]store.CourseNotebook, error) {
	var out []store.CourseNotebook
	for _, ss := range f {
		for _, s := range ss {
			if s.Platform == platform && s.ContextID == contextID && s.OpenedFile {
				out = append(out, store.CourseNotebook{Path: s.Opened, ResourceLinkID: s.ResourceLinkID})
			}
		}
	}
	return out, nil
}

func (f fakeStore) LinkOpenings(_ context.Context, platform, link string) ([]store.LinkOpening, error) {
	var out []store.LinkOpening
	for _, ss := range f {
		for _, s := range ss {
			if s.Platform == platform && s.ResourceLinkID == link && s.Checkout != "" {
				out = append(out, store.LinkOpening{Username: s.Username, Opened: s.Opened, OpenedFile: s.OpenedFile, Signed: s.NextSigned})
			}
		}
	}
	return out, nil
}
func (f fakeStore) UsernamesWithPrefix(_ context.Context, p string) ([]string, error) {
	var out []string
	for u := range f {
		if strings.HasPrefix(u, p) {
			out = append(out, u)
		}
	}
	return out, nil
}

func TestResolvePaths(t *testing.T) {
	long := "a-very-long-student-name-from-the-lms"
	s := sess(1, "hw1", "materials", "materials/hw1/hw1.ipynb", true, 0)
	ls := s
	ls.Username = long
	r := &Resolver{Store: fakeStore{"alice": {s}, long: {ls}},
		Layout: paths.Layout{Home: "/home/jupyter-{username}", Patterns: []string{"/srv/autograded/{username}/{path}"}},
		Cwd:    "/home/jupyter-alice/materials"}
	for _, c := range []struct{ in, user, wantUser string }{
		{"/home/jupyter-alice/materials/hw1/hw1.ipynb", "", "alice"},
		{"/srv/autograded/alice/materials/hw1/hw1.ipynb", "", "alice"},
		{"hw1/hw1.ipynb", "", "alice"},
		{"materials/hw1/hw1.ipynb", "alice", "alice"},
		{"/home/" + paths.TLJHUnixName(long) + "/materials/hw1/hw1.ipynb", "", long},
	} {
		res, err := r.Resolve(context.Background(), c.in, c.user)
		if err != nil || res.Username != c.wantUser || res.Rel != "materials/hw1/hw1.ipynb" {
			t.Errorf("%s (user %q): %+v %v", c.in, c.user, res, err)
		}
	}
	_, err := r.Resolve(context.Background(), "/home/jupyter-bob/materials/hw1/hw1.ipynb", "")
	var nf *NotFoundError
	if !errors.As(err, &nf) || !strings.Contains(nf.Error(), `user "bob"`) || !strings.Contains(nf.Hint(), "--user bob") {
		t.Errorf("not found: %v", err)
	}
	_, err = r.Resolve(context.Background(), "x\x00y", "")
	var in *InputError
	if !errors.As(err, &in) {
		t.Errorf("NUL path: %v", err)
	}
}

// The message of exit 3 lists the user's launches in that checkout and
// what each covers, and names --launch.
func TestNotFoundListsNearbyLaunches(t *testing.T) {
	hw1 := sess(1, "hw1", "course", "course/hw1/hw1.ipynb", true, 0)
	r := &Resolver{Store: fakeStore{"alice": {hw1}}, Layout: paths.Layout{Home: "/home/jupyter-{username}"}}
	_, err := r.Resolve(context.Background(), "/home/jupyter-alice/course/hw2/hw2.ipynb", "")
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("got %v", err)
	}
	msg := nf.Error()
	for _, want := range []string{"launch 10", "covers course/hw1/ (folder", "none of the user's 1 session covers it"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if !strings.Contains(nf.Hint(), "--launch ID") {
		t.Errorf("hint %q", nf.Hint())
	}
}

// --user is normalised as the hub does (issue 8 §4).
func TestUserIsNormalised(t *testing.T) {
	s := sess(1, "hw1", "materials", "materials/hw1/hw1.ipynb", true, 0)
	r := &Resolver{Store: fakeStore{"alice": {s}}, Layout: paths.Layout{Home: "/home/jupyter-{username}"}}
	res, err := r.Resolve(context.Background(), "materials/hw1/hw1.ipynb", " Alice ")
	if err != nil || res.Username != "alice" {
		t.Fatalf("got %+v %v", res, err)
	}
}
