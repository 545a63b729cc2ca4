// Package nbgitpuller reads nbgitpuller links out of the URL an LMS sends a
// user to after an LTI launch, and works out which folder the link clones
// into and which file or folder the browser ends up on.
//
// The rules mirror nbgitpuller 1.x (nbgitpuller/handlers.py, UIHandler and
// SyncHandler) and the tornado argument handling it relies on:
//
//   - a query argument that appears more than once counts with its last value
//     (tornado's get_argument), and values are stripped of surrounding
//     whitespace;
//   - targetpath wins over targetPath, urlpath over urlPath, subpath over
//     subPath; an empty value counts as absent;
//   - without a target path the clone goes into repo.rstrip("/").split("/")[-1]
//     (".git" is kept);
//   - the clone lands in <server root>/<$NBGITPULLER_PARENTPATH>/<targetpath>;
//   - the browser is sent to <server base_url> + urlpath; without urlpath to
//     os.path.join(NBGITPULLER_PARENTPATH, targetpath, subPath) under
//     "lab/tree/" (app=lab), "notebooks/" (a .ipynb path) or "tree/". That
//     default DOES include the parent path, which is why Link carries
//     OpenedUnderParent and OpenedPath;
//   - with backup set (any non-empty value, Python truthiness) the browser is
//     sent to the parent path itself, ignoring urlpath and subPath.
//
// Unlike nbgitpuller, which turns control characters into spaces, this
// package rejects them, along with backslashes and paths that climb out of
// the server root: links like that are either broken or hostile, and a
// grader must not act on them.
package nbgitpuller

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Link is what an nbgitpuller link tells us about a launch.
type Link struct {
	Repo   string // repo= value
	Branch string // branch= value, "" if absent
	// TargetPath is the folder nbgitpuller clones into, relative to its
	// parent dir: targetpath/targetPath, else the last path segment of repo
	// (trailing "/" stripped, ".git" NOT stripped). Always cleaned, relative
	// and free of "..".
	TargetPath string
	URLPath    string // urlpath/urlPath value as nbgitpuller receives it (query-decoded once), "" if absent
	// Opened is where the browser lands, cleaned, without a leading "/",
	// relative to the single-user server root; "" if unknown or the root
	// itself. When OpenedUnderParent is set it is relative to
	// $NBGITPULLER_PARENTPATH instead: use OpenedPath.
	Opened string
	// OpenedFile says Opened names a file (a notebook or other file), not a
	// folder.
	OpenedFile bool
	// OpenedUnderParent is set when Opened came from nbgitpuller's default
	// redirect (no urlpath), which nbgitpuller builds under
	// $NBGITPULLER_PARENTPATH.
	OpenedUnderParent bool
}

// ErrNotPull says the URL is not a git-pull link; the caller treats the
// launch as having no checkout.
var ErrNotPull = errors.New("nbgitpuller: not a git-pull link")

const (
	// MaxLen bounds the input: real links are a few hundred bytes, and the
	// nested decoding below should never chew on megabytes.
	MaxLen = 64 << 10
	// maxHops bounds how many wrapping next= URLs are followed; real LMS
	// setups wrap at most twice.
	maxHops = 5
	// maxUnescapes bounds extra decoding rounds per hop for next values that
	// were percent-encoded once too often.
	maxUnescapes = 3
)

// Parse finds the nbgitpuller link in next, following next= parameters of
// wrapping URLs such as /hub/lti/launch?next=... It returns ErrNotPull when
// there is no git-pull link, and any other error when there
// is one but it is malformed or tries to reach outside the server root.
func Parse(next string) (*Link, error) {
	if len(next) > MaxLen {
		return nil, fmt.Errorf("nbgitpuller: link is longer than %d bytes", MaxLen)
	}
	if !utf8.ValidString(next) {
		return nil, errors.New("nbgitpuller: link is not valid UTF-8")
	}
	if strings.ContainsRune(next, 0) {
		return nil, errors.New("nbgitpuller: link contains a NUL byte")
	}
	cur := strings.TrimSpace(next)
	for hop := 0; hop <= maxHops; hop++ {
		var err error
		if cur, err = unwrapEncoded(cur); err != nil {
			return nil, err
		}
		p, rawQuery := splitURL(cur)
		q, err := parseQuery(rawQuery)
		if err != nil {
			return nil, err
		}
		if isPullPath(p) {
			return fromQuery(q)
		}
		nv, ok := q.last("next")
		if !ok || nv == "" {
			return nil, ErrNotPull
		}
		cur = nv
	}
	return nil, fmt.Errorf("nbgitpuller: next= nested more than %d levels deep", maxHops)
}

// Checkout is the checkout folder relative to the server root. parent is
// $NBGITPULLER_PARENTPATH: trusted configuration, expected to be relative.
func (l *Link) Checkout(parent string) string {
	return path.Join(parent, l.TargetPath)
}

// OpenedPath is Opened relative to the server root, given
// $NBGITPULLER_PARENTPATH; "" when Opened is unknown.
func (l *Link) OpenedPath(parent string) string {
	if l.Opened == "" || !l.OpenedUnderParent {
		return l.Opened
	}
	return path.Join(parent, l.Opened)
}

// unwrapEncoded decodes a next value that was percent-encoded one level too
// many (it starts with "%2F" or "https%3A" instead of "/" or "https:"), which
// happens when an LMS or a link builder double-encodes nested URLs.
func unwrapEncoded(s string) (string, error) {
	for range maxUnescapes {
		if !looksEncoded(s) {
			return s, nil
		}
		u := strings.TrimSpace(unescape(s, false))
		if u == s {
			// "%zz" and friends: nothing to decode, so not a wrapped URL
			// either; let the caller find that it is no git-pull link.
			return s, nil
		}
		s = u
		if !utf8.ValidString(s) {
			return "", errors.New("nbgitpuller: next= value is not valid UTF-8")
		}
	}
	if looksEncoded(s) {
		return "", errors.New("nbgitpuller: next= value is encoded too many times")
	}
	return s, nil
}

func looksEncoded(s string) bool {
	if strings.HasPrefix(s, "%") {
		return true
	}
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "http%3a") || strings.HasPrefix(l, "https%3a")
}

// splitURL returns the path (scheme and authority dropped) and raw query.
// It is deliberately more lenient than net/url, like Python's urlparse that
// JupyterHub and nbgitpuller use: a stray "%" must not hide a link.
func splitURL(s string) (p, rawQuery string) {
	s, _, _ = strings.Cut(s, "#")
	s, rawQuery, _ = strings.Cut(s, "?")
	if i := strings.Index(s, "://"); i > 0 && isScheme(s[:i]) {
		s = s[i+3:]
		if j := strings.IndexByte(s, '/'); j >= 0 {
			s = s[j:]
		} else {
			s = ""
		}
	} else if strings.HasPrefix(s, "//") {
		s = s[2:]
		if j := strings.IndexByte(s, '/'); j >= 0 {
			s = s[j:]
		} else {
			s = ""
		}
	}
	return s, rawQuery
}

func isScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// isPullPath says whether p routes to nbgitpuller's UI handler: git-pull (or
// its legacy alias git-sync) directly under a single-user server, reached as
// /hub/user-redirect/..., /user/<name>/..., /user/<name>/<server>/... (named
// servers) or at the root of a standalone server, behind any base_url.
func isPullPath(p string) bool {
	p = unescape(p, false)
	segs := strings.Split(strings.Trim(p, "/"), "/")
	n := len(segs)
	if last := segs[n-1]; last != "git-pull" && last != "git-sync" {
		return false
	}
	pre := segs[:n-1]
	switch {
	case len(pre) == 0:
		return true
	case len(pre) >= 2 && pre[len(pre)-2] == "hub" && pre[len(pre)-1] == "user-redirect":
		return true
	case len(pre) >= 2 && pre[len(pre)-2] == "user" && pre[len(pre)-1] != "":
		return true
	case len(pre) >= 3 && pre[len(pre)-3] == "user" && pre[len(pre)-2] != "" && !appWords[pre[len(pre)-1]] && pre[len(pre)-1] != "":
		return true
	}
	return false
}

// appWords are first segments of Jupyter app URLs; /user/<name>/tree/git-pull
// is a folder called git-pull, not a named server.
var appWords = map[string]bool{
	"tree": true, "lab": true, "notebooks": true, "edit": true, "files": true,
	"view": true, "voila": true, "retro": true, "doc": true, "api": true,
}

type query map[string][]string

func (q query) last(key string) (string, bool) {
	v := q[key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// first returns the first non-empty of the named arguments, matching
// nbgitpuller's `get_argument(a, None) or get_argument(b, None)`.
func (q query) first(keys ...string) string {
	for _, k := range keys {
		if v, _ := q.last(k); v != "" {
			return v
		}
	}
	return ""
}

// parseQuery follows Python's parse_qsl(keep_blank_values=True) as used by
// tornado: "&" separates pairs, "+" is a space, invalid %-escapes stay as
// they are. Tornado answers 400 to arguments that are not UTF-8, so they are
// an error here too. Values are whitespace-trimmed like get_argument does.
func parseQuery(raw string) (query, error) {
	q := query{}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k = unescape(k, true)
		v = unescape(v, true)
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, errors.New("nbgitpuller: query argument is not valid UTF-8")
		}
		q[k] = append(q[k], strings.TrimSpace(v))
	}
	return q, nil
}

// unescape decodes %XX escapes like Python's urllib.parse.unquote: malformed
// escapes are kept literally instead of failing.
func unescape(s string, plusIsSpace bool) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case c == '+' && plusIsSpace:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func fromQuery(q query) (*Link, error) {
	repo, ok := q.last("repo")
	if !ok || repo == "" {
		return nil, errors.New("nbgitpuller: git-pull link has no repo")
	}
	l := &Link{Repo: repo}
	l.Branch, _ = q.last("branch")
	l.URLPath = q.first("urlpath", "urlPath")
	for _, a := range [...]struct{ name, v string }{{"repo", l.Repo}, {"branch", l.Branch}, {"urlpath", l.URLPath}} {
		if hasControl(a.v) {
			return nil, fmt.Errorf("nbgitpuller: %s contains a control character", a.name)
		}
	}

	target := q.first("targetpath", "targetPath")
	what := "targetpath"
	if target == "" {
		_, target, _ = cutLast(strings.TrimRight(repo, "/"), "/")
		what = "last segment of repo"
	}
	tp, err := checkRel(target, what)
	if err != nil {
		return nil, err
	}
	if tp == "." {
		return nil, fmt.Errorf("nbgitpuller: %s %q would clone into the parent folder itself", what, target)
	}
	if hasDotDot(target) {
		return nil, fmt.Errorf("nbgitpuller: %s %q contains \"..\"", what, target)
	}
	l.TargetPath = tp

	if err := l.setOpened(q); err != nil {
		return nil, err
	}
	if b, _ := q.last("backup"); b != "" {
		// nbgitpuller then redirects to the parent folder whatever the link
		// asked for, and that is not a page we can name. The paths were
		// still checked above: a link with a path trick is hostile either way.
		l.Opened, l.OpenedFile, l.OpenedUnderParent = "", false, false
	}
	return l, nil
}

func (l *Link) setOpened(q query) error {
	if l.URLPath != "" {
		var err error
		l.Opened, l.OpenedFile, err = openedFromURLPath(l.URLPath)
		return err
	}

	sub := q.first("subpath", "subPath")
	if sub == "" {
		sub = "."
	}
	if strings.HasPrefix(sub, "/") {
		return fmt.Errorf("nbgitpuller: subPath %q is absolute", sub)
	}
	if err := checkChars(sub, "subPath"); err != nil {
		return err
	}
	opened := path.Join(l.TargetPath, sub)
	if escapes(opened) {
		return fmt.Errorf("nbgitpuller: subPath %q leaves the checkout's parent folder", sub)
	}
	if opened == "." {
		opened = ""
	}
	l.Opened = opened
	l.OpenedUnderParent = opened != ""
	l.OpenedFile = opened != "" && hasFileExt(path.Base(opened))
	return nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return "", s, false
}

// checkRel rejects what cannot be a safe relative path and returns it
// cleaned.
func checkRel(p, what string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("nbgitpuller: %s is empty", what)
	}
	if err := checkChars(p, what); err != nil {
		return "", err
	}
	if strings.HasPrefix(p, "/") {
		// os.path.join drops everything before an absolute component, so the
		// clone would leave the server root.
		return "", fmt.Errorf("nbgitpuller: %s %q is absolute", what, p)
	}
	c := path.Clean(p)
	if escapes(c) {
		return "", fmt.Errorf("nbgitpuller: %s %q leaves its parent folder", what, p)
	}
	return c, nil
}

// checkChars rejects control characters, which tornado would turn into
// spaces, and backslashes, which a Windows server or a browser reads as "/".
func checkChars(p, what string) error {
	if hasControl(p) {
		return fmt.Errorf("nbgitpuller: %s contains a control character", what)
	}
	if strings.ContainsRune(p, '\\') {
		return fmt.Errorf("nbgitpuller: %s %q contains a backslash", what, p)
	}
	return nil
}

func escapes(clean string) bool {
	return clean == ".." || strings.HasPrefix(clean, "../") || strings.HasPrefix(clean, "/")
}

func hasDotDot(p string) bool {
	for s := range strings.SplitSeq(p, "/") {
		if s == ".." {
			return true
		}
	}
	return false
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// form is a Jupyter URL shape that urlpath may take: the leading segments
// ("*" matches any one segment) and whether the rest must name a file.
type form struct {
	prefix []string
	file   bool
}

// forms is ordered longest first so "lab/workspaces/x/tree" wins over "lab".
var forms = []form{
	{[]string{"lab", "workspaces", "*", "tree"}, false},
	{[]string{"doc", "workspaces", "*", "tree"}, false},
	{[]string{"lab", "tree"}, false},
	{[]string{"doc", "tree"}, false},
	{[]string{"retro", "tree"}, false},
	{[]string{"retro", "notebooks"}, true},
	{[]string{"retro", "edit"}, true},
	{[]string{"voila", "render"}, true},
	{[]string{"voila", "tree"}, false},
	{[]string{"tree"}, false},
	{[]string{"notebooks"}, true},
	{[]string{"edit"}, true},
	{[]string{"files"}, true},
	{[]string{"view"}, true},
}

// openedFromURLPath maps an urlpath to the server-root-relative path it
// opens. Paths of apps we do not know (rstudio, shiny, ...) give "".
func openedFromURLPath(u string) (opened string, file bool, err error) {
	u, _, _ = strings.Cut(u, "#")
	u, _, _ = strings.Cut(u, "?")
	// The browser requests base_url+urlpath and the server decodes the path
	// once more; an encoded "?" (JupyterLab's %3Fautodecode) then starts the
	// junk we drop.
	u = unescape(u, false)
	if !utf8.ValidString(u) {
		return "", false, errors.New("nbgitpuller: urlpath is not valid UTF-8")
	}
	u, _, _ = strings.Cut(u, "?")
	if hasControl(u) {
		return "", false, errors.New("nbgitpuller: urlpath contains a control character")
	}
	if strings.ContainsRune(u, '\\') {
		return "", false, fmt.Errorf("nbgitpuller: urlpath %q contains a backslash", u)
	}
	segs := strings.Split(strings.TrimLeft(u, "/"), "/")
	if len(segs) >= 2 && segs[0] == "user" {
		segs = segs[2:]
	}
	for _, f := range forms {
		rest, ok := matchPrefix(segs, f.prefix)
		if !ok {
			continue
		}
		c := path.Clean(strings.TrimLeft(strings.Join(rest, "/"), "/"))
		if escapes(c) {
			return "", false, fmt.Errorf("nbgitpuller: urlpath %q leaves the server root", u)
		}
		if c == "." {
			return "", false, nil
		}
		return c, f.file || hasFileExt(path.Base(c)), nil
	}
	// Unknown apps still must not carry a path climbing out of the server.
	if escapes(path.Clean(strings.Join(segs, "/"))) {
		return "", false, fmt.Errorf("nbgitpuller: urlpath %q leaves the server root", u)
	}
	return "", false, nil
}

func matchPrefix(segs, prefix []string) ([]string, bool) {
	if len(segs) < len(prefix) {
		return nil, false
	}
	for i, p := range prefix {
		if p == "*" {
			if segs[i] == "" {
				return nil, false
			}
			continue
		}
		if segs[i] != p {
			return nil, false
		}
	}
	return segs[len(prefix):], true
}

// hasFileExt guesses whether name is a file from its extension: a short run
// of letters, digits, "_" or "-" with at least one letter, so "v1.2" and
// ".config" stay folders. ".git" is a folder too: it is what a clone of
// "repo.git" without targetpath is called.
func hasFileExt(name string) bool {
	ext := path.Ext(name)
	if len(ext) < 2 || len(ext) > 11 || ext == name || strings.EqualFold(ext, ".git") {
		return false
	}
	letter := false
	for _, r := range ext[1:] {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			letter = true
		case r >= '0' && r <= '9', r == '_', r == '-':
		default:
			return false
		}
	}
	return letter
}
