// Package paths maps notebook paths on a JupyterHub host to the users who own
// them, and back.
//
// A grader names a file ("/home/jupyter-alice/course/hw1.ipynb", or a copy in
// an autograder tree such as "/srv/course/autograded/alice/course/hw1.ipynb");
// ltigrade must find whose launch that is and which path inside that user's
// notebook root it stands for, because launches are recorded by the path the
// student opened, relative to their root.
//
// Paths are slash-separated Unix paths: JupyterHub hosts that ltigrade serves
// are Linux machines, and using package path (not path/filepath) keeps the
// mapping identical in tests on any OS.
package paths

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// Placeholders understood in templates.
const (
	UserPlaceholder = "{username}"
	PathPlaceholder = "{path}"
)

// DefaultHome is TLJH's home directory layout, the most common host for
// ltigrade; other hubs set [Layout.Home] in the config file.
const DefaultHome = "/home/jupyter-{username}"

// tljhMarker is how TLJH's home directory is written in a template. Only a
// template that spells the unix name this way gets TLJH's long-name rule,
// because only then is the segment really a TLJH system user name.
const tljhMarker = "jupyter-" + UserPlaceholder

// tljhPrefix is what TLJH puts before the hub username to form the unix name.
const tljhPrefix = "jupyter-"

// TLJH's limits (tljh/normalize.py, generate_system_username, called with
// "jupyter-"+name by UserCreatingSpawner): unix names of tljhMaxRunes code
// points or more are cut to tljhMaxRunes and suffixed with "-" and
// tljhHashLen hex digits of sha256, which keeps them under 32 characters.
const (
	tljhMaxRunes = 26
	tljhHashLen  = 5
)

// TLJHUnixName returns the unix user name The Littlest JupyterHub creates for
// hub user name. Lengths count Unicode code points, as Python's len does, and
// the hash is over the UTF-8 bytes, so names such as "zoë" or "李雷" get the
// same unix name TLJH gives them. No Unicode normalisation is applied: TLJH
// applies none either, so "zoë" written with a combining diaeresis is a
// different user.
func TLJHUnixName(name string) string {
	full := tljhPrefix + name
	if utf8.RuneCountInString(full) < tljhMaxRunes {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	return firstRunes(full, tljhMaxRunes) + "-" + hex.EncodeToString(sum[:])[:tljhHashLen]
}

// firstRunes returns the first n code points of s (all of s if shorter).
func firstRunes(s string, n int) string {
	i := 0
	for range n {
		if i >= len(s) {
			break
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}

// Layout says where each user's notebooks live. Home is the template of a
// user's notebook root (the server's root_dir), with a {path} implied after
// it; Patterns are further trees that mirror a root per user, such as an
// autograder's copies, each ending in "/{path}".
type Layout struct {
	Home     string
	Patterns []string
}

// Match is one way an absolute path can be read as a user's notebook.
type Match struct {
	// Username is the hub user name.
	Username string
	// Rel is the path inside the user's notebook root: slash-separated,
	// cleaned, without a leading "/".
	Rel string
	// Template is the Home or pattern template, as configured, that matched.
	Template string
}

// KnownUsers returns the stored user names that start with prefix. Match needs
// it only for TLJH names that were truncated and hashed, where the path holds
// just the first characters of the name.
type KnownUsers func(prefix string) ([]string, error)

// Root returns username's notebook root, for example "/home/jupyter-alice".
// It substitutes without validating: callers pass a checked Layout (the
// config package validates it) and a real hub user name.
func (l Layout) Root(username string) string {
	return path.Clean(render(l.Home, username))
}

// render fills the username into a template, giving TLJH's unix name where
// the template spells "jupyter-{username}".
func render(tmpl, username string) string {
	if strings.Contains(tmpl, tljhMarker) {
		tmpl = strings.ReplaceAll(tmpl, tljhMarker, TLJHUnixName(username))
	}
	return strings.ReplaceAll(tmpl, UserPlaceholder, username)
}

// Validate reports the first problem with the Home template or a pattern.
func (l Layout) Validate() error {
	if err := ValidateHome(l.Home); err != nil {
		return err
	}
	for _, p := range l.Patterns {
		if err := ValidatePattern(p); err != nil {
			return err
		}
	}
	return nil
}

// ValidateHome checks a home template: absolute, {username} exactly once,
// no {path} (it is implied after the root).
func ValidateHome(t string) error {
	_, err := parseTemplate(t, false)
	return err
}

// ValidatePattern checks a pattern template: absolute, {username} exactly
// once, ending in "/{path}" so that the part after the user's directory can be
// read as a path inside the user's root.
func ValidatePattern(t string) error {
	_, err := parseTemplate(t, true)
	return err
}

// template is a parsed Home or pattern. The user's directory is
// "/" + dir... + "/" + pre + NAME + suf + "/" + after..., and the notebook
// path follows it. NAME is the hub user name, or its TLJH unix name when tljh
// is set (pre then excludes the "jupyter-" that TLJHUnixName supplies).
type template struct {
	raw      string
	dir      []string
	pre, suf string
	tljh     bool
	after    []string
}

func parseTemplate(t string, isPattern bool) (*template, error) {
	kind := "home"
	if isPattern {
		kind = "pattern"
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("paths: %s template %q: %s", kind, t, fmt.Sprintf(format, args...))
	}
	switch {
	case t == "":
		return nil, fmt.Errorf("paths: %s template is empty", kind)
	case strings.IndexByte(t, 0) >= 0:
		return nil, bad("contains a NUL byte")
	case !strings.HasPrefix(t, "/"):
		return nil, bad("must be an absolute path")
	case strings.Count(t, UserPlaceholder) != 1:
		return nil, bad("must contain %s exactly once", UserPlaceholder)
	}
	var segs []string
	for s := range strings.SplitSeq(t, "/") {
		switch s {
		case "":
			// Doubled or trailing slashes are harmless; path.Clean drops them.
		case ".", "..":
			return nil, bad("must not contain %q components", s)
		default:
			segs = append(segs, s)
		}
	}
	if isPattern {
		if len(segs) == 0 || segs[len(segs)-1] != PathPlaceholder {
			return nil, bad("must end with /%s", PathPlaceholder)
		}
		segs = segs[:len(segs)-1]
	}
	if strings.Contains(strings.Join(segs, "/"), PathPlaceholder) {
		if isPattern {
			return nil, bad("%s may appear only once, as the last component", PathPlaceholder)
		}
		return nil, bad("must not contain %s: the notebook path follows the home directory", PathPlaceholder)
	}
	tp := &template{raw: t}
	user := -1
	for i, s := range segs {
		rest := strings.Replace(s, UserPlaceholder, "", 1)
		if strings.ContainsAny(rest, "{}") {
			// An unknown placeholder is almost always a typo such as {user};
			// taking it literally would make the template silently never match.
			return nil, bad("unknown placeholder or stray brace in %q (only %s and %s are known)", s, UserPlaceholder, PathPlaceholder)
		}
		if rest != s {
			user = i
		}
	}
	tp.dir = segs[:user]
	tp.after = segs[user+1:]
	seg := segs[user]
	if i := strings.Index(seg, tljhMarker); i >= 0 {
		tp.tljh = true
		tp.pre, tp.suf = seg[:i], seg[i+len(tljhMarker):]
	} else {
		i := strings.Index(seg, UserPlaceholder)
		tp.pre, tp.suf = seg[:i], seg[i+len(UserPlaceholder):]
	}
	return tp, nil
}

// templates parses Home and then each pattern, the order Match tries them in.
func (l Layout) templates() ([]*template, error) {
	home, err := parseTemplate(l.Home, false)
	if err != nil {
		return nil, err
	}
	out := []*template{home}
	for _, p := range l.Patterns {
		tp, err := parseTemplate(p, true)
		if err != nil {
			return nil, err
		}
		out = append(out, tp)
	}
	return out, nil
}

// cleanAbs checks and cleans a path given as absolute.
func cleanAbs(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("paths: empty path")
	case strings.IndexByte(p, 0) >= 0:
		return "", fmt.Errorf("paths: path %q contains a NUL byte", p)
	case !strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("paths: %q is not an absolute path", p)
	}
	// Clean resolves ".." lexically; in a rooted path it cannot climb above
	// "/", so a path that escapes a user's root lands elsewhere and simply
	// fails to match that root.
	return path.Clean(p), nil
}

// Match finds which users the absolute path abs can belong to. It tries Home
// first, then each pattern in order, and returns every distinct (user, path)
// reading, each with the first template that gave it: with
// overlapping patterns, or two TLJH names that share a truncated prefix and
// hash, a path is genuinely ambiguous and the caller must decide. The path
// must name something inside a root; the root itself is not a notebook.
// A nil knownUsers knows no users, so truncated TLJH names then match nobody.
func (l Layout) Match(abs string, knownUsers KnownUsers) ([]Match, error) {
	clean, err := cleanAbs(abs)
	if err != nil {
		return nil, err
	}
	tps, err := l.templates()
	if err != nil {
		return nil, err
	}
	segs := splitAbs(clean)
	type reading struct{ user, rel string }
	var out []Match
	seen := make(map[reading]bool)
	for _, tp := range tps {
		ms, err := tp.match(segs, knownUsers)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			// Two templates giving the same user and path are one answer; the
			// first template (Home before patterns) is kept as its reason.
			if r := (reading{m.Username, m.Rel}); !seen[r] {
				seen[r] = true
				out = append(out, m)
			}
		}
	}
	return out, nil
}

func splitAbs(clean string) []string {
	if clean == "/" {
		return nil
	}
	return strings.Split(clean[1:], "/")
}

func (tp *template) match(segs []string, knownUsers KnownUsers) ([]Match, error) {
	n := len(tp.dir) + 1 + len(tp.after)
	if len(segs) <= n { // at least one component of notebook path is required
		return nil, nil
	}
	for i, d := range tp.dir {
		if segs[i] != d {
			return nil, nil
		}
	}
	for i, a := range tp.after {
		if segs[len(tp.dir)+1+i] != a {
			return nil, nil
		}
	}
	users, err := tp.users(segs[len(tp.dir)], knownUsers)
	if err != nil || len(users) == 0 {
		return nil, err
	}
	rel := strings.Join(segs[n:], "/")
	out := make([]Match, 0, len(users))
	for _, u := range users {
		out = append(out, Match{Username: u, Rel: rel, Template: tp.raw})
	}
	return out, nil
}

// users returns the hub user names whose directory segment is seg.
func (tp *template) users(seg string, knownUsers KnownUsers) ([]string, error) {
	if len(seg) <= len(tp.pre)+len(tp.suf) || !strings.HasPrefix(seg, tp.pre) || !strings.HasSuffix(seg, tp.suf) {
		return nil, nil
	}
	mid := seg[len(tp.pre) : len(seg)-len(tp.suf)]
	if !tp.tljh {
		return []string{mid}, nil
	}
	if !strings.HasPrefix(mid, tljhPrefix) {
		return nil, nil
	}
	// A unix name shorter than the limit was never truncated, so it holds the
	// whole user name.
	if utf8.RuneCountInString(mid) < tljhMaxRunes {
		if name := mid[len(tljhPrefix):]; name != "" {
			return []string{name}, nil
		}
		return nil, nil
	}
	// Otherwise it must be exactly the truncated form; the hash cannot be
	// inverted, so ask the store for users sharing the visible prefix and keep
	// those whose unix name is this one.
	trunc, ok := splitHashed(mid)
	if !ok {
		return nil, nil
	}
	prefix := trunc[len(tljhPrefix):]
	if knownUsers == nil {
		return nil, nil
	}
	cands, err := knownUsers(prefix)
	if err != nil {
		return nil, fmt.Errorf("paths: looking up users whose name starts with %q: %w", prefix, err)
	}
	var out []string
	for _, c := range cands {
		if TLJHUnixName(c) == mid {
			out = append(out, c)
		}
	}
	return out, nil
}

// splitHashed returns the truncated part of a TLJH unix name of the form
// <26 code points>-<5 lowercase hex digits>.
func splitHashed(mid string) (string, bool) {
	cut := len(mid) - tljhHashLen - 1
	if cut < 0 || mid[cut] != '-' {
		return "", false
	}
	for _, r := range mid[cut+1:] {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return "", false
		}
	}
	trunc := mid[:cut]
	if utf8.RuneCountInString(trunc) != tljhMaxRunes || !strings.HasPrefix(trunc, tljhPrefix) {
		return "", false
	}
	return trunc, true
}

// Rel returns the path inside username's notebook root that p names, for
// commands given --user. A relative p is taken inside the root; an absolute p
// must lie inside the root or match a pattern for that user. Either way the
// result is cleaned, and a path that escapes the root with ".." or names the
// root itself is an error, so a grade can never be attached to a file outside
// the student's own tree.
func (l Layout) Rel(username, p string) (string, error) {
	if err := checkUsername(username); err != nil {
		return "", err
	}
	switch {
	case p == "":
		return "", errors.New("paths: empty path")
	case strings.IndexByte(p, 0) >= 0:
		return "", fmt.Errorf("paths: path %q contains a NUL byte", p)
	}
	if !strings.HasPrefix(p, "/") {
		c := path.Clean(p)
		switch {
		case c == "..", strings.HasPrefix(c, "../"):
			return "", fmt.Errorf("paths: %q leaves %s's notebook root", p, username)
		case c == ".":
			return "", fmt.Errorf("paths: %q is %s's notebook root itself, not a path inside it", p, username)
		}
		return c, nil
	}
	only := func(prefix string) ([]string, error) {
		if strings.HasPrefix(username, prefix) {
			return []string{username}, nil
		}
		return nil, nil
	}
	ms, err := l.Match(p, only)
	if err != nil {
		return "", err
	}
	for _, m := range ms {
		if m.Username == username {
			return m.Rel, nil
		}
	}
	return "", fmt.Errorf("paths: %s is not inside %s's notebook root %s and matches no pattern for %s", p, username, l.Root(username), username)
}

// checkUsername rejects names that cannot be a single path component, which
// would make Root and the templates produce a path for some other directory.
func checkUsername(u string) error {
	switch {
	case u == "":
		return errors.New("paths: empty user name")
	case u == "." || u == "..", strings.ContainsAny(u, "/\x00"):
		return fmt.Errorf("paths: %q is not a valid user name", u)
	}
	return nil
}
