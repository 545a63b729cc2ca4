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

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func sess(id int64, link, checkout, opened string, file bool, age time.Duration) store.Session {
	return store.Session{ID: id, Launch: store.Launch{ID: id * 10, Username: "alice", Platform: "k",
		ResourceLinkID: link, ResourceLinkTitle: link, Checkout: checkout, Opened: opened, OpenedFile: file,
		LaunchedAt: t0.Add(-age)}, LaunchID: id * 10}
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
		// the checkout contains it, four assignments tie
		{"materials/README.ipynb", all, 0, "", true, false},
		{"elsewhere/x.ipynb", all, 0, "", false, true},
		// the folder itself is not "inside" the folder; the checkout name alone is not a notebook
		{"materials", all, 0, "", false, true},
		// a prefix that is not a path component must not match
		{"materials/hw1x/hw1.ipynb", []store.Session{hw1}, 1, MatchCheckout, false, false},
	}
	for _, c := range cases {
		best, _, ok, err := Best(c.sessions, c.rel)
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
	best, _, ok, err := Best([]store.Session{a, b}, "m/hw1.ipynb")
	if !ok || err != nil || best.Session.ID != 2 {
		t.Fatalf("got %+v %v", best, err)
	}
}

type fakeStore map[string][]store.Session

func (f fakeStore) UserSessions(_ context.Context, u string) ([]store.Session, error) {
	return f[u], nil
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
