// Package resolve finds the launch a score for a notebook belongs to.
//
// A notebook path is first turned into (user, path inside the user's
// notebook root) by the configured layout; then the user's current sessions
// are ranked by how closely their nbgitpuller link points at the notebook:
// the launch that opened exactly this notebook, then the deepest opened
// folder containing it, then the checkout folder containing it.
package resolve

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ltigrade/ltigrade/internal/paths"
	"github.com/ltigrade/ltigrade/internal/store"
)

// How a session matched a notebook, best first.
const (
	MatchNotebook = "notebook" // the launch opened exactly this notebook
	MatchFolder   = "folder"   // the launch opened a folder containing it
	MatchCheckout = "checkout" // the notebook lies in the launch's checkout
)

var rank = map[string]int{MatchNotebook: 3, MatchFolder: 2, MatchCheckout: 1}

// Candidate is a session that could take the score, and why.
type Candidate struct {
	Session store.Session `json:"session"`
	How     string        `json:"matched_by"`
	Depth   int           `json:"depth"` // path segments of the matching notebook/folder
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
}

// NotFoundError says no session matches; it carries what was tried.
type NotFoundError struct {
	Path  string
	Tried []paths.Match // users and paths tried; empty if no layout matched
	Why   string
}

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
	return b.String()
}

// Hint tells the user how to see what exists.
func (e *NotFoundError) Hint() string {
	if len(e.Tried) == 0 {
		return "check paths.home and paths.patterns in the config, or pass --user"
	}
	return fmt.Sprintf("list that user's sessions with: ltigrade sessions list --user %s", shellQuote(e.Tried[0].Username))
}

// AmbiguousError says two different LMS assignments match equally well.
type AmbiguousError struct {
	Path       string
	Candidates []Candidate
}

func (e *AmbiguousError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s matches %d assignments equally well (by %s):", e.Path, len(e.Candidates), e.Candidates[0].How)
	for _, c := range e.Candidates {
		fmt.Fprintf(&b, "\n  launch %d  session %d  %s  %q (%s)", c.Session.LaunchID, c.Session.ID,
			c.Session.Username, c.Session.ResourceLinkTitle, c.Session.ResourceLinkID)
	}
	return b.String()
}

// Hint tells the user how to choose.
func (e *AmbiguousError) Hint() string {
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

func depth(p string) int { return strings.Count(p, "/") + 1 }

// candidate ranks one session against rel (a cleaned path inside the
// user's root); ok is false if the session does not match at all.
func candidate(s store.Session, rel string) (Candidate, bool) {
	opened := path.Clean("/" + s.Opened)[1:]
	if opened != "" {
		if s.OpenedFile && opened == rel {
			return Candidate{Session: s, How: MatchNotebook, Depth: depth(opened)}, true
		}
		// A launch that opened a notebook opened that notebook's folder.
		dir := opened
		if s.OpenedFile {
			dir = path.Dir(opened)
		}
		if within(rel, dir) {
			return Candidate{Session: s, How: MatchFolder, Depth: depth(dir)}, true
		}
	}
	checkout := path.Clean("/" + s.Checkout)[1:]
	if within(rel, checkout) {
		return Candidate{Session: s, How: MatchCheckout, Depth: depth(checkout)}, true
	}
	return Candidate{}, false
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
// different assignments tie, or ok=false when nothing matches.
func Best(sessions []store.Session, rel string) (best Candidate, rest []Candidate, ok bool, err error) {
	var cands []Candidate
	for _, s := range sessions {
		if c, ok := candidate(s, rel); ok {
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
}

// Resolver maps notebook paths to sessions.
type Resolver struct {
	Store  Sessions
	Layout paths.Layout
	Cwd    string // for relative paths without a user; default the process's
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
		rel, err := r.Layout.Rel(user, notebook)
		if err != nil {
			return nil, &InputError{Msg: err.Error()}
		}
		matches = []paths.Match{{Username: user, Rel: rel}}
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
	for _, m := range matches {
		sessions, err := r.Store.UserSessions(ctx, m.Username)
		if err != nil {
			return nil, err
		}
		best, rest, ok, err := Best(sessions, m.Rel)
		if err != nil {
			err.(*AmbiguousError).Path = notebook
			return nil, err
		}
		if ok {
			found = append(found, &Result{Path: notebook, Username: m.Username, Rel: m.Rel,
				Root: r.Layout.Root(m.Username), Match: best, Others: rest})
		}
	}
	switch len(found) {
	case 0:
		why := ""
		if len(matches) == 1 {
			if s, _ := r.Store.UserSessions(ctx, matches[0].Username); len(s) == 0 {
				why = "the user has no sessions"
			} else {
				why = fmt.Sprintf("none of the user's %d sessions has a checkout or opened folder containing it", len(s))
			}
		}
		return nil, &NotFoundError{Path: notebook, Tried: matches, Why: why}
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

func patternsNote(l paths.Layout) string {
	if len(l.Patterns) == 0 {
		return ", no paths.patterns"
	}
	return fmt.Sprintf(", paths.patterns %q", l.Patterns)
}

// InputError is a malformed notebook argument (exit code 2).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }
