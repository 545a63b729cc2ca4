package nbgitpuller

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// canvasNext is what Canvas shows as the launch URL of an assignment built
// with the nbgitpuller link generator: the git-pull link is encoded once as
// the value of next, so its own values are encoded twice.
const canvasNext = "https://hub.example.org/hub/lti/launch?next=%2Fhub%2Fuser-redirect%2Fgit-pull%3Frepo%3Dhttps%253A%252F%252Fgithub.com%252Fdata-8%252Fmaterials-fa17%26urlpath%3Dtree%252Fmaterials-fa17%252Fhw%252Fhw1%252Fhw1.ipynb%26branch%3Dmain"

func TestParse(t *testing.T) {
	const repo = "https://github.com/data-8/materials-fa17"
	tests := []struct {
		name string
		in   string
		want Link
	}{
		{
			name: "canvas launch wrapping a lab link",
			in:   canvasNext,
			want: Link{Repo: repo, Branch: "main", TargetPath: "materials-fa17", URLPath: "tree/materials-fa17/hw/hw1/hw1.ipynb",
				Opened: "materials-fa17/hw/hw1/hw1.ipynb", OpenedFile: true},
		},
		{
			name: "user-redirect, classic tree folder",
			in:   "/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Fdata-8%2Fmaterials-fa17&urlpath=tree%2Fmaterials-fa17%2Fhw",
			want: Link{Repo: repo, TargetPath: "materials-fa17", URLPath: "tree/materials-fa17/hw", Opened: "materials-fa17/hw"},
		},
		{
			name: "user server path",
			in:   "/user/alice/git-pull?repo=https://github.com/org/course&urlpath=lab/tree/course/lab1.ipynb",
			want: Link{Repo: "https://github.com/org/course", TargetPath: "course", URLPath: "lab/tree/course/lab1.ipynb",
				Opened: "course/lab1.ipynb", OpenedFile: true},
		},
		{
			name: "named server",
			in:   "/user/alice/gpu/git-pull?repo=https://github.com/org/course",
			want: Link{Repo: "https://github.com/org/course", TargetPath: "course", Opened: "course", OpenedUnderParent: true},
		},
		{
			name: "full URL with base_url prefix",
			in:   "https://hub.example/jupyter/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Forg%2Fcourse&urlpath=lab%2Ftree%2Fcourse%2Fa.ipynb",
			want: Link{Repo: "https://github.com/org/course", TargetPath: "course", URLPath: "lab/tree/course/a.ipynb",
				Opened: "course/a.ipynb", OpenedFile: true},
		},
		{
			name: "base_url prefix, relative",
			in:   "/jupyter/hub/user-redirect/git-pull?repo=r&urlpath=tree/r",
			want: Link{Repo: "r", TargetPath: "r", URLPath: "tree/r", Opened: "r"},
		},
		{
			name: "standalone server root",
			in:   "/git-pull?repo=r",
			want: Link{Repo: "r", TargetPath: "r", Opened: "r", OpenedUnderParent: true},
		},
		{
			name: "legacy git-sync alias",
			in:   "/hub/user-redirect/git-sync?repo=r&urlpath=notebooks/r/x.ipynb",
			want: Link{Repo: "r", TargetPath: "r", URLPath: "notebooks/r/x.ipynb", Opened: "r/x.ipynb", OpenedFile: true},
		},
		{
			name: "moodle-style lti/redirect wrapper around hub launch",
			in: "/lti/redirect?next=" + url.QueryEscape("/hub/lti/launch?next="+
				url.QueryEscape("/hub/user-redirect/git-pull?repo="+url.QueryEscape(repo)+"&urlpath="+url.QueryEscape("lab/tree/materials-fa17/README.md"))),
			want: Link{Repo: repo, TargetPath: "materials-fa17", URLPath: "lab/tree/materials-fa17/README.md",
				Opened: "materials-fa17/README.md", OpenedFile: true},
		},
		{
			name: "next double-encoded",
			in:   "/hub/lti/launch?next=%252Fhub%252Fuser-redirect%252Fgit-pull%253Frepo%253Dhttps%25253A%25252F%25252Fgithub.com%25252Fdata-8%25252Fmaterials-fa17",
			want: Link{Repo: repo, TargetPath: "materials-fa17", Opened: "materials-fa17", OpenedUnderParent: true},
		},
		{
			name: "next as encoded absolute URL",
			in:   "/hub/login?next=https%253A%252F%252Fhub.example%252Fhub%252Fuser-redirect%252Fgit-pull%253Frepo%253Dr",
			want: Link{Repo: "r", TargetPath: "r", Opened: "r", OpenedUnderParent: true},
		},
		{
			name: "whole input encoded",
			in:   "%2Fhub%2Fuser-redirect%2Fgit-pull%3Frepo%3Dr%26urlpath%3Dtree%252Fr",
			want: Link{Repo: "r", TargetPath: "r", URLPath: "tree/r", Opened: "r"},
		},
		{
			name: "camelCase urlPath and targetPath",
			in:   "/hub/user-redirect/git-pull?repo=https://github.com/org/course.git&urlPath=lab/tree/week1/a.ipynb&targetPath=week1&branch=gh-pages",
			want: Link{Repo: "https://github.com/org/course.git", Branch: "gh-pages", TargetPath: "week1", URLPath: "lab/tree/week1/a.ipynb",
				Opened: "week1/a.ipynb", OpenedFile: true},
		},
		{
			name: "lowercase wins over camelCase",
			in:   "/hub/user-redirect/git-pull?repo=r&targetPath=b&targetpath=a&urlPath=tree/b&urlpath=tree/a",
			want: Link{Repo: "r", TargetPath: "a", URLPath: "tree/a", Opened: "a"},
		},
		{
			name: "empty lowercase falls back to camelCase",
			in:   "/hub/user-redirect/git-pull?repo=r&targetpath=&targetPath=b",
			want: Link{Repo: "r", TargetPath: "b", Opened: "b", OpenedUnderParent: true},
		},
		{
			name: "repeated argument: last wins",
			in:   "/hub/user-redirect/git-pull?repo=first&repo=second",
			want: Link{Repo: "second", TargetPath: "second", Opened: "second", OpenedUnderParent: true},
		},
		{
			name: "values are trimmed like tornado does",
			in:   "/hub/user-redirect/git-pull?repo=+r+&branch=%20main%20",
			want: Link{Repo: "r", Branch: "main", TargetPath: "r", Opened: "r", OpenedUnderParent: true},
		},
		{
			name: ".git kept, trailing slash stripped",
			in:   "/hub/user-redirect/git-pull?repo=https://github.com/org/course.git/",
			want: Link{Repo: "https://github.com/org/course.git/", TargetPath: "course.git", Opened: "course.git", OpenedUnderParent: true},
		},
		{
			name: "nested targetpath",
			in:   "/hub/user-redirect/git-pull?repo=r&targetpath=courses/ds100/",
			want: Link{Repo: "r", TargetPath: "courses/ds100", Opened: "courses/ds100", OpenedUnderParent: true},
		},
		{
			name: "deprecated subPath, notebook app",
			in:   "/hub/user-redirect/git-pull?repo=https://github.com/data-8/materials-fa17&subPath=hw/hw1/hw1.ipynb",
			want: Link{Repo: repo, TargetPath: "materials-fa17", Opened: "materials-fa17/hw/hw1/hw1.ipynb", OpenedFile: true, OpenedUnderParent: true},
		},
		{
			name: "deprecated subpath and app=lab with targetpath",
			in:   "/hub/user-redirect/git-pull?repo=r&subpath=week2&app=lab&targetpath=course",
			want: Link{Repo: "r", TargetPath: "course", Opened: "course/week2", OpenedUnderParent: true},
		},
		{
			name: "subPath climbing within the parent is cleaned",
			in:   "/hub/user-redirect/git-pull?repo=r&subPath=../other/x.py",
			want: Link{Repo: "r", TargetPath: "r", Opened: "other/x.py", OpenedFile: true, OpenedUnderParent: true},
		},
		{
			name: "urlpath wins over subPath",
			in:   "/hub/user-redirect/git-pull?repo=r&subPath=x&urlpath=tree/r/y",
			want: Link{Repo: "r", TargetPath: "r", URLPath: "tree/r/y", Opened: "r/y"},
		},
		{
			name: "backup lands on the parent folder",
			in:   "/hub/user-redirect/git-pull?repo=r&urlpath=tree/r/y.ipynb&backup=true",
			want: Link{Repo: "r", TargetPath: "r", URLPath: "tree/r/y.ipynb"},
		},
		{
			name: "fragment ignored",
			in:   "/hub/user-redirect/git-pull?repo=r&urlpath=tree/r#top",
			want: Link{Repo: "r", TargetPath: "r", URLPath: "tree/r", Opened: "r"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if *got != tt.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.in, *got, tt.want)
			}
		})
	}
}

func TestURLPathForms(t *testing.T) {
	tests := []struct {
		urlpath string
		opened  string
		file    bool
	}{
		{"tree/c/hw1", "c/hw1", false},
		{"tree/c/hw1/", "c/hw1", false},
		{"/tree/c/hw1.ipynb", "c/hw1.ipynb", true},
		{"lab/tree/c/hw1.ipynb", "c/hw1.ipynb", true},
		{"lab/tree/c/hw1.ipynb?autodecode", "c/hw1.ipynb", true},
		{"lab/tree/c/hw1.ipynb%3Fautodecode", "c/hw1.ipynb", true},
		{"lab/tree/c/hw1.ipynb%3fautodecode", "c/hw1.ipynb", true},
		{"lab/tree/c?reset", "c", false},
		{"lab/workspaces/auto-x/tree/c/a.py", "c/a.py", true},
		{"doc/tree/c/notes.md", "c/notes.md", true},
		{"doc/workspaces/w/tree/c/notes.md", "c/notes.md", true},
		{"notebooks/c/hw1.ipynb", "c/hw1.ipynb", true},
		{"notebooks/c/Makefile", "c/Makefile", true},
		{"retro/tree/c", "c", false},
		{"retro/notebooks/c/a.ipynb", "c/a.ipynb", true},
		{"voila/render/c/dashboard.ipynb", "c/dashboard.ipynb", true},
		{"voila/tree/c", "c", false},
		{"edit/c/README", "c/README", true},
		{"tree/My%20Course/Week%201/lab.ipynb", "My Course/Week 1/lab.ipynb", true},
		{"tree/caf%C3%A9/a.ipynb", "café/a.ipynb", true},
		{"/user/alice/lab/tree/c/a.ipynb", "c/a.ipynb", true},
		{"tree//c//a.ipynb", "c/a.ipynb", true},
		{"tree/c/./x/../a.ipynb", "c/a.ipynb", true},
		{"tree/c/100%.ipynb", "c/100%.ipynb", true},
		{"tree/c/v1.2", "c/v1.2", false},
		{"tree/c/.config", "c/.config", false},
		{"tree/course.git", "course.git", false},
		{"lab", "", false},
		{"lab/", "", false},
		{"lab?reset", "", false},
		{"tree", "", false},
		{"tree/", "", false},
		{"lab/tree", "", false},
		{"lab/workspaces/w", "", false},
		{"rstudio", "", false},
		{"shiny/c/app/", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.urlpath, func(t *testing.T) {
			in := "/hub/user-redirect/git-pull?repo=r&urlpath=" + url.QueryEscape(tt.urlpath)
			got, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", in, err)
			}
			if got.Opened != tt.opened || got.OpenedFile != tt.file || got.OpenedUnderParent {
				t.Errorf("urlpath %q: Opened=%q OpenedFile=%v OpenedUnderParent=%v, want %q %v false",
					tt.urlpath, got.Opened, got.OpenedFile, got.OpenedUnderParent, tt.opened, tt.file)
			}
		})
	}
}

func TestParseNotPull(t *testing.T) {
	for _, in := range []string{
		"",
		"   ",
		"/hub/",
		"/hub/home",
		"/hub/spawn",
		"/user/alice/lab",
		"/user/alice/tree/git-pull",
		"/user/alice/lab/tree/git-pull/x.ipynb",
		"/hub/user-redirect/lab/tree/course/a.ipynb",
		"https://hub.example/hub/lti/launch",
		"/hub/lti/launch?next=",
		"/hub/lti/launch?next=%2Fhub%2Fhome",
		"/hub/user-redirect/git-pull/api?repo=r",
		"/hub/user-redirect/interact?repo=materials-fa17",
		"/hub/user-redirect/Git-Pull?repo=r",
		"javascript:alert(1)",
		"mailto:x@example.org",
		"%zz",
	} {
		_, err := Parse(in)
		if !errors.Is(err, ErrNotPull) {
			t.Errorf("Parse(%q) = %v, want ErrNotPull", in, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	const pull = "/hub/user-redirect/git-pull?repo=https://github.com/org/course"
	for _, in := range []string{
		"/hub/user-redirect/git-pull",
		"/hub/user-redirect/git-pull?branch=main",
		"/hub/user-redirect/git-pull?repo=",
		"/hub/user-redirect/git-pull?repo=https://github.com/org/..",
		"/hub/user-redirect/git-pull?repo=https://github.com/org/.",
		"/hub/user-redirect/git-pull?repo=..",
		"/hub/user-redirect/git-pull?repo=%2F%2F%2F",
		"/hub/user-redirect/git-pull?repo=C:%5Cusers%5Ccourse",
		pull + "&targetpath=..",
		pull + "&targetpath=../../etc",
		pull + "&targetpath=a/../../b",
		pull + "&targetpath=a/../b",
		pull + "&targetpath=/etc",
		pull + "&targetPath=/home/bob",
		pull + "&targetpath=.",
		pull + "&targetpath=a%5C..%5C..%5Cb",
		pull + "&targetpath=a%00b",
		pull + "&targetpath=a%0Ab",
		pull + "&urlpath=tree/../../etc/passwd",
		pull + "&urlpath=tree/%2E%2E/%2E%2E/x",
		pull + "&urlpath=lab/tree/..",
		pull + "&urlpath=rstudio/../../x",
		pull + "&urlpath=tree/a%255Cb",
		pull + "&urlpath=tree/a%2500b",
		pull + "&urlpath=tree/%25FF.ipynb",
		pull + "&urlpath=tree/a%00",
		pull + "&subPath=/etc",
		pull + "&subPath=../../x",
		pull + "&subPath=a%5Cb",
		pull + "&branch=ma%01in",
		pull + "&backup=true&urlpath=tree/../../x",
		pull + "&backup=true&subPath=../../x",
		"/hub/user-redirect/git-pull?repo=r%FF",
		"/hub/user-redirect/git-pull?repo=r\x00",
		"/hub/user-redirect/git-pull?repo=r\xff",
		encode(pull, maxUnescapes+2),
		"/hub/lti/launch?next=" + encode(pull, maxUnescapes+2),
		nest(pull, maxHops+2),
		pull + "&x=" + strings.Repeat("a", MaxLen),
	} {
		l, err := Parse(in)
		if err == nil || errors.Is(err, ErrNotPull) {
			t.Errorf("Parse(%.120q) = %+v, %v; want a non-ErrNotPull error", in, l, err)
		}
	}
}

func TestNestingLimit(t *testing.T) {
	const pull = "/hub/user-redirect/git-pull?repo=r"
	if _, err := Parse(nest(pull, maxHops)); err != nil {
		t.Errorf("%d wrappers: %v", maxHops, err)
	}
	if _, err := Parse(nest(pull, maxHops+1)); err == nil {
		t.Errorf("%d wrappers: no error", maxHops+1)
	}
}

func encode(s string, n int) string {
	for range n {
		s = url.QueryEscape(s)
	}
	return s
}

// nest wraps u in n /hub/lti/launch?next= URLs.
func nest(u string, n int) string {
	for range n {
		u = "/hub/lti/launch?next=" + url.QueryEscape(u)
	}
	return u
}

func TestCheckoutAndOpenedPath(t *testing.T) {
	l, err := Parse("/hub/user-redirect/git-pull?repo=https://github.com/org/course&subPath=hw1/hw1.ipynb")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Checkout(""); got != "course" {
		t.Errorf("Checkout(\"\") = %q", got)
	}
	if got := l.Checkout("courses"); got != "courses/course" {
		t.Errorf("Checkout(courses) = %q", got)
	}
	if got := l.OpenedPath("courses"); got != "courses/course/hw1/hw1.ipynb" {
		t.Errorf("OpenedPath(courses) = %q", got)
	}
	l, err = Parse("/hub/user-redirect/git-pull?repo=r&urlpath=tree/courses/r/a.ipynb")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.OpenedPath("courses"); got != "courses/r/a.ipynb" {
		t.Errorf("urlpath OpenedPath(courses) = %q, want it unchanged", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		canvasNext,
		"/hub/user-redirect/git-pull?repo=r&urlpath=lab/tree/r/a.ipynb%3Fautodecode",
		"/user/alice/git-pull?repo=r&targetPath=x/y&subPath=z.py&app=lab",
		"/hub/lti/launch?next=%252Fhub%252Fuser-redirect%252Fgit-pull%253Frepo%253Dr",
		"/hub/user-redirect/git-pull?repo=r&targetpath=../x",
		"/hub/user-redirect/git-pull?repo=r&urlpath=tree/%2E%2E/x",
		"/hub/user-redirect/git-pull?repo=..&subPath=..",
		"/hub/user-redirect/git-pull?repo=r&subPath=../..",
		"https://h/jupyter/hub/user-redirect/git-pull?repo=r&urlpath=/user/a/voila/render/x.ipynb&backup=1",
		"/git-pull?repo=%C3%A9&urlPath=tree/%C3%A9",
		"%2Fgit-pull%3Frepo%3D%255C",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			if l != nil {
				t.Fatalf("Parse(%q) returned a link with error %v", s, err)
			}
			return
		}
		for name, p := range map[string]string{
			"Opened": l.Opened, "OpenedPath": l.OpenedPath(""), "Checkout": l.Checkout(""), "TargetPath": l.TargetPath,
		} {
			if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "..") || strings.ContainsRune(p, 0) || strings.ContainsRune(p, '\\') {
				t.Fatalf("Parse(%q): %s = %q escapes the server root", s, name, p)
			}
		}
		if l.TargetPath == "" || l.TargetPath == "." || l.Repo == "" {
			t.Fatalf("Parse(%q): empty TargetPath or Repo in %+v", s, *l)
		}
		if l.Opened == "" && (l.OpenedFile || l.OpenedUnderParent) {
			t.Fatalf("Parse(%q): flags set without Opened: %+v", s, *l)
		}
	})
}
