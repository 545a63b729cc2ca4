package lmssim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/testenv"
)

const sbSecret = "sandbox-s3cret-never-shown"

func testCourse() Course {
	return Course{
		ID: "ds-100", Label: "DS100",
		// Characters that trip percent-encoding and HTML escaping.
		Title:  `Data <Science> & "Friends" + 100% ~ ünïcode ✓`,
		Repo:   "https://git.example.org/course/ds100 materials+x.git",
		Branch: "main",
		Students: []Student{
			{Name: "alice"},
			{Name: "bob", UserID: "lms-user-17", FullName: "Bob <b>Builder</b>"},
		},
		Assignments: []Assignment{
			{ID: "hw1", Path: "hw1/hw1.ipynb"},
			{ID: "hw2", Title: "Homework 2 & more", Path: "hw 2/hw+2 ü.ipynb"},
		},
	}
}

func startSandbox(t *testing.T) (*Sandbox, *httptest.Server) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	sb, err := NewSandbox(LaunchBuilder{HubURL: "http://127.0.0.1:8000/jupyter/", Key: "sandbox-key", Secret: sbSecret, Course: testCourse()}, base)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = sb.Handler()
	srv.Start()
	t.Cleanup(func() { srv.Close(); sb.Close() })
	return sb, srv
}

func get(t *testing.T, u string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), sbSecret) {
		t.Fatalf("%s shows the secret", u)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func fetchLaunch(t *testing.T, base, student, assignment string) *SignedLaunch {
	t.Helper()
	code, _, body := get(t, base+"/launch.json?"+url.Values{"student": {student}, "assignment": {assignment}}.Encode())
	if code != 200 {
		t.Fatalf("launch.json: %d %s", code, body)
	}
	var l SignedLaunch
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatal(err)
	}
	return &l
}

// verifyLaunch checks a launch as ltiauthenticator does, but with our own
// OAuth code: query and form arguments together, no Authorization header.
func verifyLaunch(t testing.TB, l *SignedLaunch, secret string, now time.Time) {
	t.Helper()
	// The browser posts the form; the server sees query + body.
	req := httptest.NewRequest("POST", l.Action, strings.NewReader(formBody(l.Params)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := req.ParseForm(); err != nil {
		t.Fatal(err)
	}
	var params [][2]string
	for k, vs := range req.Form {
		if len(vs) != 1 {
			t.Fatalf("argument %s sent %d times", k, len(vs))
		}
		if k != "oauth_signature" {
			params = append(params, [2]string{k, vs[0]})
		}
	}
	want, err := lti11.Signature("POST", "http://"+req.Host+req.URL.RequestURI(), params, secret, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Form.Get("oauth_signature"); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	ts, err := strconv.ParseInt(req.Form.Get("oauth_timestamp"), 10, 64)
	if err != nil || len(req.Form.Get("oauth_timestamp")) != 10 {
		t.Fatalf("timestamp %q", req.Form.Get("oauth_timestamp"))
	}
	if d := now.Sub(time.Unix(ts, 0)); d > LaunchWindow || d < -LaunchWindow {
		t.Fatalf("timestamp off by %s", d)
	}
	for _, p := range []string{"oauth_consumer_key", "oauth_signature_method", "oauth_timestamp", "oauth_nonce", "oauth_callback", "oauth_version", "lti_message_type", "lti_version", "resource_link_id", "user_id"} {
		if req.Form.Get(p) == "" {
			t.Errorf("required argument %s is missing", p)
		}
	}
}

func formBody(p map[string]string) string {
	v := url.Values{}
	for k, x := range p {
		v.Set(k, x)
	}
	return v.Encode()
}

func TestSandboxLaunchJSONIsSignedAndFresh(t *testing.T) {
	sb, srv := startSandbox(t)
	l := fetchLaunch(t, srv.URL, "bob", "hw2")
	verifyLaunch(t, l, sbSecret, time.Now())

	u, _ := url.Parse(l.Action)
	if u.Scheme+"://"+u.Host+u.Path != "http://127.0.0.1:8000/jupyter/hub/lti/launch" {
		t.Fatalf("action %s", l.Action)
	}
	if _, ok := l.Params["next"]; ok {
		t.Fatal("next belongs in the launch URL's query, not the form")
	}
	as, err := l.AuthState()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"user_id": "lms-user-17", UsernameKey: "bob", "resource_link_id": "hw2", "resource_link_title": "Homework 2 & more",
		"roles": "Learner", "context_id": "ds-100", "lis_person_name_full": "Bob <b>Builder</b>",
		"lis_outcome_service_url": srv.URL + "/outcomes", "lis_result_sourcedid": "ds-100:hw2:lms-user-17",
		"ext_outcome_data_values_accepted": "text",
		"next":                             "/jupyter/hub/user-redirect/git-pull?branch=main&repo=https%3A%2F%2Fgit.example.org%2Fcourse%2Fds100+materials%2Bx.git&urlpath=tree%2Fds100+materials%2Bx.git%2Fhw+2%2Fhw%2B2+%C3%BC.ipynb",
	}
	for k, v := range want {
		if as[k] != v {
			t.Errorf("auth_state %s = %q, want %q", k, as[k], v)
		}
	}
	// The builder's AuthState (what `ltigrade demo` records) is exactly the
	// hub's view of the signed launch.
	b := sb.Builder()
	bs, err := b.AuthState("bob", "hw2")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(bs) != fmt.Sprint(as) {
		t.Fatalf("builder auth_state\n%v\nhub view\n%v", bs, as)
	}

	// What the hook would record parses into the right checkout and notebook.
	rec, _ := json.Marshal(map[string]any{"username": as[UsernameKey], "consumer_key": "sandbox-key", "next_url": as["next"], "auth_state": as})
	pl, err := launch.Parse(rec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if pl.Username != "bob" || pl.Pull == nil || pl.Pull.TargetPath != "ds100 materials+x.git" || pl.Pull.Opened != "ds100 materials+x.git/hw 2/hw+2 ü.ipynb" || pl.SourcedID != "ds-100:hw2:lms-user-17" {
		t.Fatalf("parsed %+v pull %+v", pl, pl.Pull)
	}

	// Every request is signed anew.
	l2 := fetchLaunch(t, srv.URL, "bob", "hw2")
	if l2.Params["oauth_nonce"] == l.Params["oauth_nonce"] || l2.Params["oauth_signature"] == l.Params["oauth_signature"] {
		t.Fatal("two launches share a nonce or signature")
	}
	// A tampered launch fails our check (the check is not vacuous).
	l2.Params["user_id"] = "alice"
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { recover() }()
		verifyLaunch(ft, l2, sbSecret, time.Now())
	}()
	if !ft.failed {
		t.Fatal("a tampered launch verified")
	}
}

// fatalRecorder turns Fatalf into a recorded failure, to test a checker.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(string, ...any) { f.failed = true; panic("stop") }
func (f *fatalRecorder) Errorf(string, ...any) { f.failed = true }
func (f *fatalRecorder) Fatal(...any)          { f.failed = true; panic("stop") }

func TestSandboxPages(t *testing.T) {
	_, srv := startSandbox(t)
	code, h, body := get(t, srv.URL+"/")
	if code != 200 || !strings.Contains(h.Get("Content-Type"), "text/html") {
		t.Fatalf("index: %d %v", code, h)
	}
	for _, want := range []string{
		`Data &lt;Science&gt; &amp; &#34;Friends&#34; &#43; 100% ~ ünïcode ✓`,
		`href="/launch?student=bob&amp;assignment=hw2"`,
		`<code>sandbox-key</code>`, `href="/gradebook"`, `Homework 2 &amp; more`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("index lacks %s\n%s", want, body)
		}
	}
	if strings.Contains(body, "<Science>") {
		t.Error("index does not escape the course title")
	}

	code, h, body = get(t, srv.URL+"/launch?student=bob&assignment=hw2")
	if code != 200 {
		t.Fatalf("launch page: %d", code)
	}
	if !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'sha256-") || h.Get("Cache-Control") != "no-store" {
		t.Errorf("launch page headers %v", h)
	}
	if !strings.Contains(body, "<script>"+autoSubmit+"</script>") || !strings.Contains(body, `<button type="submit">`) {
		t.Errorf("launch page lacks the auto-submit or the button:\n%s", body)
	}
	// Read the form back as a browser would and check its signature.
	m := regexp.MustCompile(`<form id="launch" method="post" action="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form:\n%s", body)
	}
	l := &SignedLaunch{Action: htmlUnescape(m[1]), Params: map[string]string{}}
	for _, f := range regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`).FindAllStringSubmatch(body, -1) {
		l.Params[htmlUnescape(f[1])] = htmlUnescape(f[2])
	}
	if l.Params["lis_person_name_full"] != "Bob <b>Builder</b>" || l.Params["context_title"] != testCourse().Title {
		t.Fatalf("form fields %v", l.Params)
	}
	verifyLaunch(t, l, sbSecret, time.Now())

	for _, q := range []string{"student=mallory&assignment=hw1", "student=alice&assignment=hw9", ""} {
		if code, _, _ := get(t, srv.URL+"/launch.json?"+q); code != 404 {
			t.Errorf("launch.json?%s: %d, want 404", q, code)
		}
	}
	if code, _, _ := get(t, srv.URL+"/nothing"); code != 404 {
		t.Errorf("/nothing: %d", code)
	}

	// A request naming another host (DNS rebinding) is refused.
	req, _ := http.NewRequest("GET", srv.URL+"/launch.json?student=alice&assignment=hw1", nil)
	req.Host = "evil.example:8765"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: %d", resp.StatusCode)
	}

	// Another site cannot send a browser through a launch.
	req, _ = http.NewRequest("GET", srv.URL+"/launch?student=alice&assignment=hw1", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site launch: %d", resp.StatusCode)
	}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&#43;", "+").Replace(s)
}

func TestSandboxOutcomesAndGradebook(t *testing.T) {
	sb, srv := startSandbox(t)
	as, err := fetchLaunch(t, srv.URL, "alice", "hw1").AuthState()
	if err != nil {
		t.Fatal(err)
	}
	o := (&lti11.Client{}).Do(context.Background(), as["lis_outcome_service_url"], "sandbox-key", sbSecret,
		lti11.ResultRequest{Op: lti11.ReplaceResult, SourcedID: as["lis_result_sourcedid"], Score: "0.85", ResultDataText: "well <done>"})
	if o.Status != lti11.Sent {
		t.Fatalf("passback: %+v", o)
	}
	// A wrong secret and a sourcedId outside the course are refused.
	if o := (&lti11.Client{}).Do(context.Background(), srv.URL+"/outcomes", "sandbox-key", "wrong",
		lti11.ResultRequest{Op: lti11.ReplaceResult, SourcedID: as["lis_result_sourcedid"], Score: "0.1"}); o.Status == lti11.Sent {
		t.Fatal("wrong secret accepted")
	}
	if o := (&lti11.Client{}).Do(context.Background(), srv.URL+"/outcomes", "sandbox-key", sbSecret,
		lti11.ResultRequest{Op: lti11.ReplaceResult, SourcedID: "ds-100:hw1:mallory", Score: "1"}); o.Status != lti11.Rejected {
		t.Fatalf("foreign sourcedid: %+v", o)
	}
	if g, ok := sb.Sim().Grade("ds-100:hw1:alice"); !ok || g.Score != "0.85" {
		t.Fatalf("grade %+v", g)
	}
	_, _, body := get(t, srv.URL+"/gradebook")
	if !regexp.MustCompile(`<td>alice</td><td>hw1</td><td>0.85</td><td>well &lt;done&gt;</td><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td><td>1</td>`).MatchString(body) {
		t.Fatalf("gradebook:\n%s", body)
	}
	_, _, body = get(t, srv.URL+"/")
	if !strings.Contains(body, "score 0.85") {
		t.Fatalf("index shows no score:\n%s", body)
	}
	_, _, body = get(t, srv.URL+"/grades.json")
	var gs []Grade
	if err := json.Unmarshal([]byte(body), &gs); err != nil || len(gs) != 1 || gs[0].SourcedID != "ds-100:hw1:alice" {
		t.Fatalf("grades.json %s", body)
	}
}

func TestBuilderValidation(t *testing.T) {
	bad := map[string]func(*LaunchBuilder){
		"upper-case student":  func(b *LaunchBuilder) { b.Course.Students[0].Name = "Alice" },
		"student with slash":  func(b *LaunchBuilder) { b.Course.Students[0].Name = "a/b" },
		"duplicate student":   func(b *LaunchBuilder) { b.Course.Students[1].Name = "alice" },
		"no students":         func(b *LaunchBuilder) { b.Course.Students = nil },
		"absolute path":       func(b *LaunchBuilder) { b.Course.Assignments[0].Path = "/etc/passwd" },
		"climbing path":       func(b *LaunchBuilder) { b.Course.Assignments[0].Path = "../x.ipynb" },
		"unclean path":        func(b *LaunchBuilder) { b.Course.Assignments[0].Path = "a//b.ipynb" },
		"newline in title":    func(b *LaunchBuilder) { b.Course.Title = "a\nb" },
		"bad assignment id":   func(b *LaunchBuilder) { b.Course.Assignments[0].ID = "hw 1" },
		"empty repo":          func(b *LaunchBuilder) { b.Course.Repo = "" },
		"repo ending in ..":   func(b *LaunchBuilder) { b.Course.Repo = "https://x.example/.." },
		"hub URL with query":  func(b *LaunchBuilder) { b.HubURL = "http://hub.example/?x=1" },
		"hub URL not http":    func(b *LaunchBuilder) { b.HubURL = "javascript:alert(1)" },
		"hub URL relative":    func(b *LaunchBuilder) { b.HubURL = "/hub" },
		"control in repo URL": func(b *LaunchBuilder) { b.Course.Repo = "https://x.example/a\x00b" },
	}
	for name, mutate := range bad {
		b := LaunchBuilder{HubURL: "http://127.0.0.1:8000", Key: "k", Secret: "s", Course: testCourse()}
		mutate(&b)
		if _, err := NewSandbox(b, "http://127.0.0.1:8765"); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the secret", name)
		}
	}
	if _, err := NewSandbox(LaunchBuilder{HubURL: "http://h", Key: "k", Secret: "s", Course: testCourse()}, "http://127.0.0.1:1/x"); err == nil {
		t.Error("base URL with a path accepted")
	}
	if RepoDir("https://github.com/org/repo.git/") != "repo.git" || RepoDir("/srv/git/course") != "course" {
		t.Error("RepoDir does not follow nbgitpuller")
	}
}

// Python side: oauthlib, as used by ltiauthenticator on the real hub, must
// accept the sandbox's launches. LTIGRADE_SKIP_PYTHON=1 skips; otherwise a
// missing Python is a failure, as in internal/lti11.
func python(t *testing.T) string {
	t.Helper()
	if os.Getenv("LTIGRADE_SKIP_PYTHON") == "1" {
		t.Skip("LTIGRADE_SKIP_PYTHON=1: skipping the oauthlib check")
	}
	py, err := testenv.Python()
	if err != nil {
		t.Fatalf("cannot get the python venv (set LTIGRADE_PYTHON, or LTIGRADE_SKIP_PYTHON=1 to skip): %v", err)
	}
	return py
}

func repoRoot(t *testing.T) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("go.mod not found")
		}
		dir = filepath.Dir(dir)
	}
}

func pyVerify(t *testing.T, l *SignedLaunch, secret string) (map[string]any, error) {
	t.Helper()
	js, _ := json.Marshal(l)
	cmd := exec.Command(python(t), filepath.Join(repoRoot(t), "testdata", "lmsdouble", "verify_launch.py"), "--key", "sandbox-key", "--secret", secret)
	cmd.Stdin = bytes.NewReader(js)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, err
	}
	return res, nil
}

func TestSandboxLaunchPassesOauthlib(t *testing.T) {
	_, srv := startSandbox(t)
	for _, sa := range [][2]string{{"alice", "hw1"}, {"bob", "hw2"}} {
		l := fetchLaunch(t, srv.URL, sa[0], sa[1])
		res, err := pyVerify(t, l, sbSecret)
		if err != nil {
			t.Fatalf("%s/%s: oauthlib refuses the launch: %v", sa[0], sa[1], err)
		}
		as, _ := l.AuthState()
		if res["username"] != sa[0] || fmt.Sprint(res["auth_state"]) != fmt.Sprint(as) {
			t.Fatalf("oauthlib sees username %v auth_state %v; we expect %s %v", res["username"], res["auth_state"], sa[0], as)
		}
	}
	// The checks are not vacuous: a wrong secret and a tampered next fail.
	l := fetchLaunch(t, srv.URL, "alice", "hw1")
	if _, err := pyVerify(t, l, "wrong"); err == nil {
		t.Fatal("oauthlib accepted a launch checked with the wrong secret")
	}
	l.Action = strings.Replace(l.Action, "hw1", "hw2", 1)
	if _, err := pyVerify(t, l, sbSecret); err == nil {
		t.Fatal("oauthlib accepted a launch whose next= was changed")
	}
}
