package resolve

import (
	"path"
	"strings"

	"github.com/ltigrade/ltigrade/internal/store"
)

// What a launch covers: the notebooks a score may be sent to it for.
const (
	CoversNotebook = "notebook" // only the notebook it opened
	CoversFolder   = "folder"   // a folder and everything below it
	CoversCheckout = "checkout" // its whole checkout
	CoversNothing  = "nothing"  // no nbgitpuller link: only --launch reaches it
)

// Cover is what one launch covers, and why.
type Cover struct {
	Kind string `json:"covers_kind"`
	// Path is the notebook, folder or checkout covered, relative to the
	// user's notebook root; a folder or checkout ends in "/". "" for
	// nothing.
	Path string `json:"covers"`
	Why  string `json:"covers_why"`
}

// Covers reports whether the cover takes rel, and how closely: the match
// kind and the depth of the covered path.
func (c Cover) match(rel string) (how string, depth int, ok bool) {
	p := strings.TrimSuffix(c.Path, "/")
	switch c.Kind {
	case CoversNotebook:
		if rel == p {
			return MatchNotebook, depthOf(p), true
		}
	case CoversFolder:
		if within(rel, p) {
			return MatchFolder, depthOf(p), true
		}
	case CoversCheckout:
		if within(rel, p) {
			return MatchCheckout, depthOf(p), true
		}
	}
	return "", 0, false
}

func clean(p string) string { return path.Clean("/" + p)[1:] }

// Coverage is the part of a user's notebook root that launch s covers
// (docs/resolve.md has the table):
//
//   - no nbgitpuller link (or a refused one): nothing;
//   - the checkout root, or a link without urlpath: the whole checkout;
//   - a folder: that folder and everything below it;
//   - a notebook in a subfolder of the checkout: that notebook's folder,
//     unless a launch of the same course opened a different notebook
//     directly in that folder (the folder then holds several assignments):
//     then the notebook only;
//   - a notebook at the checkout root (flat layout), or outside the
//     checkout: the notebook only.
//
// course lists the notebooks every launch of s's course opened.
func Coverage(s store.Session, course []store.CourseNotebook) Cover {
	checkout := clean(s.Checkout)
	opened := clean(s.Opened)
	switch {
	case checkout == "":
		why := "the launch had no nbgitpuller link"
		if s.PullError != "" {
			why = "its nbgitpuller link was refused"
		}
		return Cover{Kind: CoversNothing, Why: why}
	case opened == "" || opened == checkout:
		return Cover{Kind: CoversCheckout, Path: checkout + "/", Why: "it opened the checkout root"}
	case !s.OpenedFile:
		return Cover{Kind: CoversFolder, Path: opened + "/", Why: "it opened this folder"}
	}
	dir := path.Dir(opened)
	switch {
	case dir == checkout:
		return Cover{Kind: CoversNotebook, Path: opened, Why: "it opened a notebook at the checkout root"}
	case !within(dir, checkout):
		return Cover{Kind: CoversNotebook, Path: opened, Why: "it opened a notebook outside its checkout"}
	}
	for _, n := range course {
		if p := clean(n.Path); p != opened && path.Dir(p) == dir {
			return Cover{Kind: CoversNotebook, Path: opened,
				Why: "its folder holds other assignments' notebooks too (" + p + ")"}
		}
	}
	return Cover{Kind: CoversFolder, Path: dir + "/", Why: "it opened a notebook in this folder"}
}

// otherAssignment says which other assignment of s's course opened rel as
// its notebook, if one did: a folder or checkout launch never takes
// another assignment's notebook.
func otherAssignment(s store.Session, rel string, course []store.CourseNotebook) (string, bool) {
	for _, n := range course {
		if clean(n.Path) == rel && n.ResourceLinkID != s.ResourceLinkID {
			return n.ResourceLinkID, true
		}
	}
	return "", false
}
