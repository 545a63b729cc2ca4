// Package resolve finds the launch a score for a notebook belongs to.
//
// A notebook path is first turned into (user, path inside the user's
// notebook root) by the configured layout. Each of the user's current
// sessions covers part of that root, by what its nbgitpuller link opened
// and what the other launches of its course opened (Coverage); a score may
// only go to a session that covers the notebook. Among those the launch
// that opened exactly this notebook wins, then the deepest covering
// folder, then a covering checkout; within one resource link the newest
// launch. Nothing here guesses: a notebook no launch covers is a
// *NotFoundError, two assignments equally close an *AmbiguousError.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/paths"
	"github.com/ltigrade/ltigrade/internal/store"
)

// How a session matched a notebook, best first.
const (
	MatchNotebook = "notebook" // the launch opened exactly this notebook
	MatchFolder   = "folder"   // the launch covers a folder containing it
	MatchCheckout = "checkout" // the launch covers its whole checkout, which contains it
)

var rank = map[string]int{MatchNotebook: 3, MatchFolder: 2, MatchCheckout: 1}

// Candidate is a session that could take the score, and why.
type Candidate struct {
	Session store.Session `json:"session"`
	How     string        `json:"matched_by"`
	Depth   int           `json:"depth"` // path segments of the matching notebook/folder
	Cover
}

// Result is the session a notebook resolved to.
type Result struct {
	Path     string    `json:"path"`
	Username string    `json:"username"`
	Rel      string    `json:"path_in_root"`
	Root     string    `json:"root,omitempty"`
	Match    Candidate `json:"match"`
	// Others are the lesser candidates, for --json readers who want to see
	// what else was considered.
	Others []Candidate `json:"others,omitempty"`
	// Via is "roster" when the student never launched the assignment and
	// the session was made from the course roster (LTI 1.3; package
	// grade), "" for the student's own launch.
	Via string `json:"via,omitempty"`
}

// NotFoundError says no session covers the notebook; it carries what was
// tried and, for one user, that user's launches in the same checkout with
// what each covers.
type NotFoundError struct {
	Path  string
	Tried []paths.Match // users and paths tried; empty if no layout matched
	Why   string
	// Nearby are the user's sessions whose checkout holds the notebook
	// (else all of them, up to maxNearby), with what each covers and, in
	// Why, why it does not take it.
	Nearby []Candidate
	// SameCheckout says Nearby are the sessions of the notebook's checkout.
	SameCheckout bool
	// Roster says why no roster (LTI 1.3, a student who never launched)
	// could place the notebook either; "" when it was not tried.
	Roster string
}

// maxNearby bounds the launches a not-found message lists.
const maxNearby = 10

func (e *NotFoundError) Error() string {
	if len(e.Tried) == 0 {
		return fmt.Sprintf("no session for %s: %s", e.Path, e.Why)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no session for %s", e.Path)
	for i, m := range e.Tried {
		if i == 0 {
			b.WriteString(": tried ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "user %q path %q", m.Username, m.Rel)
	}
	if e.Why != "" {
		b.WriteString(" (" + e.Why + ")")
	}
	if len(e.Nearby) > 0 {
		if e.SameCheckout {
			b.WriteString("; launches of this user in the same checkout:")
		} else {
			b.WriteString("; launches of this user (none in that checkout):")
		}
		for _, c := range e.Nearby {
			fmt.Fprintf(&b, "\n  launch %d  %q (%s)  covers %s", c.Session.LaunchID, c.Session.ResourceLinkTitle,
				c.Session.ResourceLinkID, describeCover(c.Cover))
		}
	}
	if e.Roster != "" {
		b.WriteString("\n  " + e.Roster)
	}
	return b.String()
}

func describeCover(c Cover) string {
	if c.Kind == CoversNothing {
		return "nothing: " + c.Why
	}
	return fmt.Sprintf("%s (%s: %s)", c.Path, c.Kind, c.Why)
}

// Hint tells the user how to see what exists and how to choose anyway.
func (e *NotFoundError) Hint() string {
	if len(e.Tried) == 0 {
		return "check paths.home and paths.patterns in the config, or pass --user"
	}
	return fmt.Sprintf("list that user's sessions with: ltigrade sessions list --user %s; a score goes only to a launch that covers the notebook, or to one you choose explicitly with --launch ID",
		shellQuote(e.Tried[0].Username))
}

// AmbiguousError says two different LMS assignments match equally well,
// or that the best match rests on an unsigned link nothing confirms.
type AmbiguousError struct {
	Path       string
	Candidates []Candidate
	// Unverified, if set, says why the best candidate's link cannot be
	// trusted (LTI 1.3 login-initiation next without a signed next).
	Unverified string
}

func (e *AmbiguousError) Error() string {
	var b strings.Builder
	if e.Unverified != "" {
		fmt.Fprintf(&b, "%s matches launch %d only by an unverified link: %s", e.Path, e.Candidates[0].Session.LaunchID, e.Unverified)
	} else {
		fmt.Fprintf(&b, "%s matches %d assignments equally well (by %s):", e.Path, len(e.Candidates), e.Candidates[0].How)
	}
	for _, c := range e.Candidates {
		fmt.Fprintf(&b, "\n  launch %d  session %d  %s  %q (%s)  covers %s", c.Session.LaunchID, c.Session.ID,
			c.Session.Username, c.Session.ResourceLinkTitle, c.Session.ResourceLinkID, describeCover(c.Cover))
	}
	return b.String()
}

// Hint tells the user how to choose.
func (e *AmbiguousError) Hint() string {
	if e.Unverified != "" {
		return "put the nbgitpuller link in a signed place (target_link_uri or a custom next parameter; see docs/lti13.md), or pick the launch with --launch ID"
	}
	return "pick one with --launch ID"
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == '@' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// within reports whether p lies strictly inside folder dir.
func within(p, dir string) bool {
	return dir != "" && dir != "." && strings.HasPrefix(p, dir+"/")
}

func depthOf(p string) int { return strings.Count(p, "/") + 1 }

// Facts is what the resolver knows beyond one user's sessions: what every
// launch of a course opened, and, for links taken from unsigned data, what
// the other launches of the same resource link opened.
type Facts struct {
	Notebooks map[CourseKey][]store.CourseNotebook
	Openings  map[LinkKey][]store.LinkOpening
}

// CourseKey names a course: platform and context id.
type CourseKey struct{ Platform, ContextID string }

// LinkKey names an assignment: platform and resource link id.
type LinkKey struct{ Platform, ResourceLinkID string }

func courseOf(s store.Session) CourseKey { return CourseKey{s.Platform, s.ContextID} }
func linkOf(s store.Session) LinkKey     { return LinkKey{s.Platform, s.ResourceLinkID} }

// candidate ranks one session against rel (a cleaned path inside the
// user's root); ok is false if the session does not cover rel. Its cover
// is returned either way, with why it does not take rel in Why.
func candidate(s store.Session, rel string, f Facts) (Candidate, bool) {
	course := f.Notebooks[courseOf(s)]
	c := Candidate{Session: s, Cover: Coverage(s, course)}
	if s.OpenedFile && c.Kind != CoversNothing && clean(s.Opened) == rel {
		c.How, c.Depth = MatchNotebook, depthOf(rel)
		return c, true
	}
	how, depth, ok := c.match(rel)
	if !ok {
		return c, false
	}
	if other, taken := otherAssignment(s, rel, course); taken {
		c.Why = fmt.Sprintf("%s, but %s is the notebook of another assignment (%s)", c.Why, rel, other)
		return c, false
	}
	c.How, c.Depth = how, depth
	return c, true
}

// confirmed reports whether an unsigned link is backed by the other
// launches of its resource link: at least one other user's launch opened
// the same path, and no signed launch opened a different one. An LTI 1.3
// login-initiation next is sent by the browser unsigned; a student who
// replays Homework 1's login with Homework 2's next stands alone.
func confirmed(s store.Session, f Facts) (bool, string) {
	opened := clean(s.Opened)
	agree := false
	for _, o := range f.Openings[linkOf(s)] {
		same := clean(o.Opened) == opened && o.OpenedFile == s.OpenedFile
		switch {
		case o.Signed && !same:
			return false, fmt.Sprintf("a signed launch of the same resource link opened %s, not %s", dash(o.Opened), dash(s.Opened))
		case same && o.Username != s.Username:
			agree = true
		}
	}
	if !agree {
		return false, fmt.Sprintf("its nbgitpuller link came from the browser's unsigned login request, and no other user's launch of resource link %q opened %s",
			s.ResourceLinkID, dash(s.Opened))
	}
	return true, ""
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func better(a, b Candidate) bool {
	if rank[a.How] != rank[b.How] {
		return rank[a.How] > rank[b.How]
	}
	return a.Depth > b.Depth
}

func assignment(s store.Session) string { return s.Platform + "\x00" + s.ResourceLinkID }

// Best picks the session for rel among one user's sessions. It returns the
// best candidate and the rest (ranked), a *AmbiguousError when two
// different assignments tie or the best rests on an unconfirmed unsigned
// link, or ok=false when nothing covers rel.
func Best(sessions []store.Session, rel string, f Facts) (best Candidate, rest []Candidate, ok bool, err error) {
	var cands []Candidate
	for _, s := range sessions {
		if c, ok := candidate(s, rel, f); ok {
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 {
		return Candidate{}, nil, false, nil
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if better(cands[i], cands[j]) {
			return true
		}
		if better(cands[j], cands[i]) {
			return false
		}
		return cands[i].Session.LaunchedAt.After(cands[j].Session.LaunchedAt)
	})
	top := cands[0]
	var tied []Candidate
	for _, c := range cands {
		if better(top, c) {
			break
		}
		if !c.Session.NextSigned {
			// An unsigned link as good as the best one: it may be the true
			// one or a forgery, and nothing lower may win over it.
			if ok, why := confirmed(c.Session, f); !ok {
				return Candidate{}, nil, false, &AmbiguousError{Candidates: []Candidate{c}, Unverified: why}
			}
		}
		if assignment(c.Session) != assignment(top.Session) {
			tied = append(tied, c)
		}
	}
	if len(tied) > 0 {
		return Candidate{}, nil, false, &AmbiguousError{Candidates: append([]Candidate{top}, tied...)}
	}
	return top, cands[1:], true, nil
}

// Sessions is the part of the store the resolver reads.
type Sessions interface {
	UserSessions(ctx context.Context, username string) ([]store.Session, error)
	UsernamesWithPrefix(ctx context.Context, prefix string) ([]string, error)
	CourseNotebooks(ctx context.Context, platform, contextID string) ([]store.CourseNotebook, error)
	LinkOpenings(ctx context.Context, platform, resourceLinkID string) ([]store.LinkOpening, error)
}

// Resolver maps notebook paths to sessions.
type Resolver struct {
	Store  Sessions
	Layout paths.Layout
	Cwd    string // for relative paths without a user; default the process's
}

// facts loads what the sessions' courses and unsigned links need: one
// small query per course, and one per unsigned link (LTI 1.3 only).
func (r *Resolver) facts(ctx context.Context, sessions []store.Session) (Facts, error) {
	f := Facts{Notebooks: map[CourseKey][]store.CourseNotebook{}, Openings: map[LinkKey][]store.LinkOpening{}}
	for _, s := range sessions {
		if s.Checkout == "" {
			continue
		}
		if k := courseOf(s); !hasKey(f.Notebooks, k) {
			ns, err := r.Store.CourseNotebooks(ctx, k.Platform, k.ContextID)
			if err != nil {
				return f, err
			}
			f.Notebooks[k] = ns
		}
		if k := linkOf(s); !s.NextSigned && !hasKey(f.Openings, k) {
			os, err := r.Store.LinkOpenings(ctx, k.Platform, k.ResourceLinkID)
			if err != nil {
				return f, err
			}
			f.Openings[k] = os
		}
	}
	return f, nil
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// BestAmong ranks the given sessions (of any users) for rel with the
// course facts they need: which assignment's launches cover a notebook,
// for a student who never launched it.
func (r *Resolver) BestAmong(ctx context.Context, sessions []store.Session, rel string) (Candidate, []Candidate, bool, error) {
	f, err := r.facts(ctx, sessions)
	if err != nil {
		return Candidate{}, nil, false, err
	}
	best, rest, ok, err := Best(sessions, rel, f)
	var amb *AmbiguousError
	if errors.As(err, &amb) {
		amb.Path = rel
	}
	return best, rest, ok, err
}

// Resolve finds the session for notebook. With user set, a relative path
// is inside that user's root; without, a relative path is taken from the
// working directory and matched like an absolute one.
func (r *Resolver) Resolve(ctx context.Context, notebook, user string) (*Result, error) {
	if notebook == "" {
		return nil, &InputError{Msg: "notebook path is empty"}
	}
	if strings.ContainsRune(notebook, 0) {
		return nil, &InputError{Msg: "notebook path contains a NUL byte"}
	}
	var matches []paths.Match
	if user != "" {
		u, err := launch.NormalizeUsername(user)
		if err != nil {
			return nil, &InputError{Msg: "user: " + strings.TrimPrefix(err.Error(), "launch: ")}
		}
		rel, err := r.Layout.Rel(u, notebook)
		if err != nil {
			return nil, &InputError{Msg: err.Error()}
		}
		matches = []paths.Match{{Username: u, Rel: rel}}
	} else {
		abs := notebook
		if !path.IsAbs(filepath.ToSlash(abs)) {
			cwd := r.Cwd
			if cwd == "" {
				var err error
				if cwd, err = filepath.Abs("."); err != nil {
					return nil, err
				}
			}
			abs = filepath.Join(cwd, notebook)
		}
		var err error
		matches, err = r.Layout.Match(filepath.ToSlash(abs), func(prefix string) ([]string, error) {
			return r.Store.UsernamesWithPrefix(ctx, prefix)
		})
		if err != nil {
			return nil, &InputError{Msg: err.Error()}
		}
		if len(matches) == 0 {
			return nil, &NotFoundError{Path: notebook, Why: fmt.Sprintf("%s is not inside any user's notebook root (paths.home %q", abs, r.Layout.Home) + patternsNote(r.Layout) + ")"}
		}
	}
	var found []*Result
	var misses []miss
	for _, m := range matches {
		sessions, err := r.Store.UserSessions(ctx, m.Username)
		if err != nil {
			return nil, err
		}
		f, err := r.facts(ctx, sessions)
		if err != nil {
			return nil, err
		}
		best, rest, ok, err := Best(sessions, m.Rel, f)
		if err != nil {
			err.(*AmbiguousError).Path = notebook
			return nil, err
		}
		if ok {
			found = append(found, &Result{Path: notebook, Username: m.Username, Rel: m.Rel,
				Root: r.Layout.Root(m.Username), Match: best, Others: rest})
		} else {
			misses = append(misses, miss{sessions: sessions, rel: m.Rel, facts: f})
		}
	}
	switch len(found) {
	case 0:
		nf := &NotFoundError{Path: notebook, Tried: matches}
		if len(misses) == 1 {
			m := misses[0]
			if len(m.sessions) == 0 {
				nf.Why = "the user has no sessions"
			} else {
				nf.Why = fmt.Sprintf("none of the user's %d session%s covers it", len(m.sessions), plural(len(m.sessions)))
				nf.Nearby, nf.SameCheckout = nearby(m)
			}
		}
		return nil, nf
	case 1:
		return found[0], nil
	}
	// Several layouts gave several users with matching sessions.
	var cands []Candidate
	for _, f := range found {
		cands = append(cands, f.Match)
	}
	return nil, &AmbiguousError{Path: notebook, Candidates: cands}
}

type miss struct {
	sessions []store.Session
	rel      string
	facts    Facts
}

// nearby lists the sessions whose checkout holds rel, else the newest
// few, with what each covers: what an admin needs to see to choose
// --launch.
func nearby(m miss) (out []Candidate, sameCheckout bool) {
	for _, s := range m.sessions {
		if within(m.rel, clean(s.Checkout)) {
			c, _ := candidate(s, m.rel, m.facts)
			out = append(out, c)
		}
	}
	if len(out) > 0 {
		return out, true
	}
	for _, s := range m.sessions[:min(len(m.sessions), maxNearby)] {
		c, _ := candidate(s, m.rel, m.facts)
		out = append(out, c)
	}
	return out, false
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func patternsNote(l paths.Layout) string {
	if len(l.Patterns) == 0 {
		return ", no paths.patterns"
	}
	return fmt.Sprintf(", paths.patterns %q", l.Patterns)
}

// InputError is a malformed notebook argument (exit code 2).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }
