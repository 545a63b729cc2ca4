package paths

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// tljhIndependent recomputes TLJH's rule in the most literal way (slicing a
// []rune), so the test does not share the implementation's helper.
func tljhIndependent(name string) string {
	full := []rune("jupyter-" + name)
	if len(full) < 26 {
		return string(full)
	}
	sum := sha256.Sum256([]byte(string(full)))
	return string(full[:26]) + "-" + hex.EncodeToString(sum[:])[:5]
}

func TestTLJHUnixName(t *testing.T) {
	// Vectors computed with Python's hashlib running tljh's rule:
	//   python3 -c 'import hashlib; u="jupyter-"+NAME; print(u if len(u)<26 else
	//     u[:26]+"-"+hashlib.sha256(u.encode("utf-8")).hexdigest()[:5])'
	python := []struct{ name, want string }{
		{"alice", "jupyter-alice"},
		{"abcdefghijklmnopq", "jupyter-abcdefghijklmnopq"},         // 25 code points: kept
		{"abcdefghijklmnopqr", "jupyter-abcdefghijklmnopqr-e375e"}, // 26: hashed
		{"abcdefghijklmnopqrs", "jupyter-abcdefghijklmnopqr-ea375"},
		{"zoë", "jupyter-zoë"},
		{"李雷", "jupyter-李雷"},
		{"李雷李雷李雷李雷李雷李雷李雷李雷李雷李雷", "jupyter-李雷李雷李雷李雷李雷李雷李雷李雷李雷-783b2"},
		{strings.Repeat("a", 40), "jupyter-aaaaaaaaaaaaaaaaaa-60483"},
		{"zoë-éééééééééééééééééééé", "jupyter-zoë-éééééééééééééé-69217"},
		{"xxxxxxxxxxxxxxxxxé", "jupyter-xxxxxxxxxxxxxxxxxé-d1e06"}, // 26 code points, 27 bytes
		{"Zoë.Smith@example.edu", "jupyter-Zoë.Smith@example.-ea9aa"},
		// Decomposed accents count as two code points each, as in Python.
		{strings.Repeat("e\u0301", 9), "jupyter-" + strings.Repeat("e\u0301", 9) + "-d65ef"},
		{strings.Repeat("e\u0301", 10), "jupyter-" + strings.Repeat("e\u0301", 9) + "-a0117"},
		{strings.Repeat("😀", 18), "jupyter-" + strings.Repeat("😀", 18) + "-6568f"},
	}
	for _, tc := range python {
		if got := TLJHUnixName(tc.name); got != tc.want {
			t.Errorf("TLJHUnixName(%q) = %q, want %q (python)", tc.name, got, tc.want)
		}
		if got := tljhIndependent(tc.name); got != tc.want {
			t.Errorf("independent(%q) = %q, want %q: test helper disagrees with python", tc.name, got, tc.want)
		}
	}
	for _, name := range []string{"", "a", "bob", "zoe\u0308", "a.b-c_d", strings.Repeat("李", 17), strings.Repeat("李", 18), strings.Repeat("x", 100)} {
		if got, want := TLJHUnixName(name), tljhIndependent(name); got != want {
			t.Errorf("TLJHUnixName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestRoot(t *testing.T) {
	long := strings.Repeat("a", 40)
	tests := []struct {
		home, user, want string
	}{
		{DefaultHome, "alice", "/home/jupyter-alice"},
		{DefaultHome, "zoë", "/home/jupyter-zoë"},
		{DefaultHome, long, "/home/" + tljhIndependent(long)},
		{"/home/{username}", long, "/home/" + long},
		{"/home/{username}/", "bob", "/home/bob"},
		{"/srv/u-{username}.d/work", "李雷", "/srv/u-李雷.d/work"},
		{"/x/pre-jupyter-{username}-suf", long, "/x/pre-" + tljhIndependent(long) + "-suf"},
	}
	for _, tc := range tests {
		if got := (Layout{Home: tc.home}).Root(tc.user); got != tc.want {
			t.Errorf("Root(%q, %q) = %q, want %q", tc.home, tc.user, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		home     string
		patterns []string
		err      string // substring; "" means valid
	}{
		{DefaultHome, nil, ""},
		{"/home/{username}/", []string{"/srv/course/autograded/{username}/{path}", "/srv/{username}/sub/{path}"}, ""},
		{"", nil, "home template is empty"},
		{"home/{username}", nil, "must be an absolute path"},
		{"/home/jupyter", nil, "exactly once"},
		{"/home/{username}/{username}", nil, "exactly once"},
		{"/home/{username}/{path}", nil, "must not contain {path}"},
		{"/home/../{username}", nil, `".." components`},
		{"/home/./{username}", nil, `"." components`},
		{"/home/{user}", nil, "exactly once"},
		{"/home/{username}/{user}", nil, "unknown placeholder"},
		{"/home/{username}\x00", nil, "NUL"},
		{DefaultHome, []string{"/srv/{username}"}, "must end with /{path}"},
		{DefaultHome, []string{"/srv/{username}/x{path}"}, "must end with /{path}"},
		{DefaultHome, []string{"/srv/{path}/{username}/{path}"}, "only once"},
		{DefaultHome, []string{"/srv/course/{path}"}, "exactly once"},
		{DefaultHome, []string{"srv/{username}/{path}"}, "absolute"},
		{DefaultHome, []string{"/srv/{username}/{pth}/{path}"}, "unknown placeholder"},
	}
	for _, tc := range tests {
		err := Layout{Home: tc.home, Patterns: tc.patterns}.Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Validate(%q, %q) = %v, want nil", tc.home, tc.patterns, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Validate(%q, %q) = %v, want error containing %q", tc.home, tc.patterns, err, tc.err)
		case err != nil && !strings.HasPrefix(err.Error(), "paths: "):
			t.Errorf("error %q lacks the paths: prefix", err)
		}
	}
}

// store is a fake of the launch store's prefix lookup.
type store []string

func (s store) lookup(prefix string) ([]string, error) {
	var out []string
	for _, u := range s {
		if strings.HasPrefix(u, prefix) {
			out = append(out, u)
		}
	}
	return out, nil
}

func TestMatch(t *testing.T) {
	long := strings.Repeat("a", 40)
	long2 := strings.Repeat("a", 18) + "-other-person"
	han := strings.Repeat("李雷", 10)
	users := store{"alice", "bob", long, long2, han, "aaaaaaaaaaaaaaaaaa"}
	tljh := Layout{
		Home:     DefaultHome,
		Patterns: []string{"/srv/course/autograded/{username}/{path}", "/srv/nbgrader/jupyter-{username}/sub/{path}"},
	}
	plain := Layout{Home: "/home/{username}", Patterns: []string{"/srv/{username}/{path}", "/srv/{username}/{path}"}}
	m := func(u, rel, tmpl string) Match { return Match{Username: u, Rel: rel, Template: tmpl} }
	tests := []struct {
		name   string
		layout Layout
		abs    string
		want   []Match
	}{
		{"home", tljh, "/home/jupyter-alice/course/hw1.ipynb", []Match{m("alice", "course/hw1.ipynb", DefaultHome)}},
		{"unclean", tljh, "//home/./jupyter-alice//course/x/../hw1.ipynb/", []Match{m("alice", "course/hw1.ipynb", DefaultHome)}},
		{"unicode short", tljh, "/home/jupyter-zoë/Übung 1/ノート.ipynb", []Match{m("zoë", "Übung 1/ノート.ipynb", DefaultHome)}},
		{"short name not in store", tljh, "/home/jupyter-carol/a.ipynb", []Match{m("carol", "a.ipynb", DefaultHome)}},
		{"hashed", tljh, "/home/" + tljhIndependent(long) + "/a.ipynb", []Match{m(long, "a.ipynb", DefaultHome)}},
		{"hashed other user same prefix", tljh, "/home/" + tljhIndependent(long2) + "/a.ipynb", []Match{m(long2, "a.ipynb", DefaultHome)}},
		{"hashed han", tljh, "/home/" + tljhIndependent(han) + "/d/a.ipynb", []Match{m(han, "d/a.ipynb", DefaultHome)}},
		{"hashed unknown user", tljh, "/home/" + tljhIndependent(strings.Repeat("z", 30)) + "/a.ipynb", nil},
		{"hashed wrong hash", tljh, "/home/jupyter-aaaaaaaaaaaaaaaaaa-00000/a.ipynb", nil},
		{"too long unhashed", tljh, "/home/jupyter-" + long + "/a.ipynb", nil},
		{"not jupyter-", tljh, "/home/alice/a.ipynb", nil},
		{"empty name", tljh, "/home/jupyter-/a.ipynb", nil},
		{"root itself", tljh, "/home/jupyter-alice", nil},
		{"root with slash", tljh, "/home/jupyter-alice/", nil},
		{"escape", tljh, "/home/jupyter-alice/../../etc/passwd", nil},
		{"escape into other user", tljh, "/home/jupyter-alice/../jupyter-bob/x.ipynb", []Match{m("bob", "x.ipynb", DefaultHome)}},
		{"slash", tljh, "/", nil},
		{"pattern", tljh, "/srv/course/autograded/alice/course/hw1.ipynb", []Match{m("alice", "course/hw1.ipynb", "/srv/course/autograded/{username}/{path}")}},
		{"pattern unicode", tljh, "/srv/course/autograded/李雷/hw 1.ipynb", []Match{m("李雷", "hw 1.ipynb", "/srv/course/autograded/{username}/{path}")}},
		{"pattern long plain", tljh, "/srv/course/autograded/" + long + "/x.ipynb", []Match{m(long, "x.ipynb", "/srv/course/autograded/{username}/{path}")}},
		{"pattern tljh", tljh, "/srv/nbgrader/" + tljhIndependent(long) + "/sub/x.ipynb", []Match{m(long, "x.ipynb", "/srv/nbgrader/jupyter-{username}/sub/{path}")}},
		{"pattern missing literal after user", tljh, "/srv/nbgrader/jupyter-alice/x.ipynb", nil},
		{"pattern without path", tljh, "/srv/course/autograded/alice", nil},
		{"plain home", plain, "/home/" + long + "/x.ipynb", []Match{m(long, "x.ipynb", "/home/{username}")}},
		{"plain keeps jupyter-", plain, "/home/jupyter-alice/x.ipynb", []Match{m("jupyter-alice", "x.ipynb", "/home/{username}")}},
		{"duplicate patterns deduped", plain, "/srv/bob/x.ipynb", []Match{m("bob", "x.ipynb", "/srv/{username}/{path}")}},
		{"case sensitive", plain, "/home/Alice/x.ipynb", []Match{m("Alice", "x.ipynb", "/home/{username}")}},
		{"home and pattern both", Layout{Home: "/data/{username}", Patterns: []string{"/data/{username}/{path}", "/{username}/{path}"}}, "/data/bob/x",
			[]Match{m("bob", "x", "/data/{username}"), m("data", "bob/x", "/{username}/{path}")}},
		{"prefix and suffix", Layout{Home: "/u/pre-{username}.d"}, "/u/pre-zoë.d/n.ipynb", []Match{m("zoë", "n.ipynb", "/u/pre-{username}.d")}},
		{"prefix and suffix empty name", Layout{Home: "/u/pre-{username}.d"}, "/u/pre-.d/n.ipynb", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.layout.Match(tc.abs, users.lookup)
			if err != nil {
				t.Fatalf("Match(%q): %v", tc.abs, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Match(%q) = %#v, want %#v", tc.abs, got, tc.want)
			}
		})
	}
}

func TestMatchFiltersCandidates(t *testing.T) {
	// The store may return duplicates and users whose unix name differs; only
	// the owner is kept, once.
	long := strings.Repeat("b", 30)
	calls := 0
	lookup := func(prefix string) ([]string, error) {
		calls++
		if prefix != strings.Repeat("b", 18) {
			t.Errorf("prefix = %q, want 18 b's", prefix)
		}
		return []string{long, long + "x", long}, nil
	}
	got, err := Layout{Home: DefaultHome}.Match("/home/"+TLJHUnixName(long)+"/n.ipynb", lookup)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Match{{long, "n.ipynb", DefaultHome}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
	if calls != 1 {
		t.Errorf("lookup called %d times, want 1", calls)
	}
}

func TestMatchHashCollision(t *testing.T) {
	// Five hex digits are 20 bits, so two long names sharing their first 18
	// characters collide after about a thousand tries; such a home directory
	// really is shared by both names, and Match must return both.
	prefix := strings.Repeat("s", 18)
	byUnix := map[string]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		n := fmt.Sprintf("%s%08d", prefix, i)
		u := TLJHUnixName(n)
		if prev, ok := byUnix[u]; ok {
			a, b = prev, n
		}
		byUnix[u] = n
	}
	got, err := Layout{Home: DefaultHome}.Match("/home/"+TLJHUnixName(a)+"/n.ipynb", store{a, b}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := []Match{{a, "n.ipynb", DefaultHome}, {b, "n.ipynb", DefaultHome}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func TestMatchErrors(t *testing.T) {
	boom := errors.New("boom")
	failing := func(string) ([]string, error) { return nil, boom }
	l := Layout{Home: DefaultHome}
	for _, tc := range []struct{ abs, err string }{
		{"", "empty path"},
		{"home/jupyter-alice/x", "not an absolute path"},
		{"./x", "not an absolute path"},
		{"/home/jupyter-alice/x\x00y", "NUL"},
	} {
		if _, err := l.Match(tc.abs, nil); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Match(%q) error = %v, want %q", tc.abs, err, tc.err)
		}
	}
	if _, err := l.Match("/home/"+TLJHUnixName(strings.Repeat("c", 30))+"/x", failing); !errors.Is(err, boom) {
		t.Errorf("store error not passed on: %v", err)
	}
	// A nil lookup knows nobody: hashed names match no one, short ones still do.
	got, err := l.Match("/home/"+TLJHUnixName(strings.Repeat("c", 30))+"/x", nil)
	if err != nil || got != nil {
		t.Errorf("nil lookup: got %v, %v", got, err)
	}
	if _, err := (Layout{Home: "/home/{user}"}).Match("/home/x/y", nil); err == nil {
		t.Error("invalid layout: want error")
	}
}

func TestRel(t *testing.T) {
	long := strings.Repeat("a", 40)
	l := Layout{Home: DefaultHome, Patterns: []string{"/srv/autograded/{username}/{path}"}}
	tests := []struct {
		user, p, want, err string
	}{
		{"alice", "course/hw1.ipynb", "course/hw1.ipynb", ""},
		{"alice", "./course//x/../hw1.ipynb", "course/hw1.ipynb", ""},
		{"alice", "a/../../b", "", "leaves"},
		{"alice", "..", "", "leaves"},
		{"alice", ".", "", "root itself"},
		{"alice", "", "", "empty path"},
		{"alice", "a\x00b", "", "NUL"},
		{"alice", "/home/jupyter-alice/course/hw1.ipynb", "course/hw1.ipynb", ""},
		{"alice", "/home/jupyter-alice/../jupyter-bob/x", "", "not inside alice's notebook root /home/jupyter-alice"},
		{"alice", "/home/jupyter-alice", "", "not inside"},
		{"alice", "/srv/autograded/alice/hw1.ipynb", "hw1.ipynb", ""},
		{"alice", "/srv/autograded/bob/hw1.ipynb", "", "matches no pattern for alice"},
		{"zoë", "/home/jupyter-zoë/Übung/ノート.ipynb", "Übung/ノート.ipynb", ""},
		{"李雷", "作业/1.ipynb", "作业/1.ipynb", ""},
		{long, "/home/" + tljhIndependent(long) + "/x.ipynb", "x.ipynb", ""},
		{long + "b", "/home/" + tljhIndependent(long) + "/x.ipynb", "", "not inside"},
		{"", "x", "", "empty user name"},
		{"a/b", "x", "", "not a valid user name"},
		{"..", "x", "", "not a valid user name"},
	}
	for _, tc := range tests {
		got, err := l.Rel(tc.user, tc.p)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("Rel(%q, %q) = %q, %v, want %q", tc.user, tc.p, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Rel(%q, %q) = %q, %v, want error containing %q", tc.user, tc.p, got, err, tc.err)
		}
	}
}

// TestRootMatchRoundTrip checks that every root Root builds is read back by
// Match as the same user.
func TestRootMatchRoundTrip(t *testing.T) {
	names := []string{"alice", "zoë", "zoe\u0308", "李雷", strings.Repeat("李雷", 10), strings.Repeat("a", 40),
		"abcdefghijklmnopq", "abcdefghijklmnopqr", "a.b@c.d", "x-00000"}
	for _, home := range []string{DefaultHome, "/home/{username}", "/x/jupyter-{username}.d/w"} {
		l := Layout{Home: home}
		for _, n := range names {
			got, err := l.Match(l.Root(n)+"/nb.ipynb", store(names).lookup)
			want := []Match{{n, "nb.ipynb", home}}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("%s: Match(Root(%q)) = %v, %v, want %v", home, n, got, err, want)
			}
		}
	}
}
