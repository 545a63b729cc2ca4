package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/hubapi"
	"github.com/ltigrade/ltigrade/internal/lmssim"
	"github.com/ltigrade/ltigrade/internal/store"
)

func randHex(t *testing.T) string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// fixture is a service over a real store and config, a fake hub that knows
// four tokens, and the LMS simulator.
type fixture struct {
	t       *testing.T
	srv     *httptest.Server
	sim     *lmssim.Sim
	secret  string
	tokens  map[string]string // role → token
	bodies  []string          // every response body the test saw
	prefix  string
	hubSrv  *httptest.Server
	st      store.Store
	service *Server
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, secret: "consumer-secret-" + randHex(t), prefix: "/services/ltigrade/",
		tokens: map[string]string{}}
	for _, r := range []string{"student", "grader", "admin", "noscope", "otherstudent"} {
		f.tokens[r] = r + "-token-" + randHex(t)
	}
	access := "access:services!service=ltigrade"
	users := map[string]hubapi.User{
		f.tokens["student"]:      {Name: "alice", Kind: "user", Scopes: []string{access}},
		f.tokens["otherstudent"]: {Name: "bob", Kind: "user", Scopes: []string{access}},
		f.tokens["grader"]:       {Name: "ta1", Kind: "user", Groups: []string{"instructors"}, Scopes: []string{access}},
		f.tokens["admin"]:        {Name: "root", Kind: "user", Admin: true, Scopes: []string{"access:services"}},
		f.tokens["noscope"]:      {Name: "carol", Kind: "user", Scopes: []string{"read:users:name!user=carol"}},
	}
	f.hubSrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hub/api/user":
			u, ok := users[strings.TrimPrefix(r.Header.Get("Authorization"), "token ")]
			if !ok {
				http.Error(w, `{"status":403}`, http.StatusForbidden)
				return
			}
			json.NewEncoder(w).Encode(u)
		case "/hub/api/oauth2/token":
			r.ParseForm()
			// good-code logs in the grader; <role>-code that role.
			role := strings.TrimSuffix(r.PostForm.Get("code"), "-code")
			if role == "good" {
				role = "grader"
			}
			tok, ok := f.tokens[role]
			if r.PostForm.Get("client_secret") != "service-api-token" || !ok {
				http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer"}`, tok)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.hubSrv.Close)

	f.sim = lmssim.New(map[string]string{"course-key": f.secret})
	lms, err := f.sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.sim.Close() })

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "course.secret")
	os.WriteFile(secretFile, []byte(f.secret+"\n"), 0o600)
	cfgFile := filepath.Join(dir, "config.toml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`database = %q
[paths]
home = "/home/jupyter-{username}"
[hub]
spool_dir = %q
[[lti11.consumers]]
key = "course-key"
secret_file = %q
[passback]
timeout = "3s"
[service]
graders = ["group:instructors"]
`, filepath.Join(dir, "db"), filepath.Join(dir, "spool"), secretFile)), 0o600)
	cfg, err := config.Load(config.Options{ConfigFlag: cfgFile, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	for _, u := range []string{"alice", "bob"} {
		_, err := st.RecordLaunch(context.Background(), &store.Launch{Username: u, Version: "1.1", Platform: "course-key",
			LTIUserID: "lti-" + u, ResourceLinkID: "hw1", ResourceLinkTitle: "Homework 1", ContextID: "c1", ContextLabel: "DS100",
			OutcomeURL: lms + "/outcomes", SourcedID: "src-" + u, Checkout: "course", Opened: "course/hw1/hw1.ipynb",
			OpenedFile: true, NextSigned: true, LaunchedAt: time.Now(), AuthState: []byte(`{"secret_looking":"auth-state-` + u + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
	}
	g := &grade.Local{Store: st, Config: cfg}
	g.CatchUp = g.CatchUpSpool
	policy, _ := NewPolicy(cfg.Service.Graders)
	auth := &Auth{Hub: &hubapi.Client{APIURL: f.hubSrv.URL + "/hub/api"}, Policy: policy, Service: "ltigrade", Prefix: f.prefix,
		OAuth: &oauth2.Config{ClientID: "service-ltigrade", ClientSecret: "service-api-token", RedirectURL: f.prefix + "oauth_callback",
			Endpoint: oauth2.Endpoint{AuthURL: f.hubSrv.URL + "/hub/api/oauth2/authorize", TokenURL: f.hubSrv.URL + "/hub/api/oauth2/token",
				AuthStyle: oauth2.AuthStyleInParams}}}
	f.service = &Server{Grader: g, Auth: auth, Prefix: f.prefix, Version: "test"}
	f.srv = httptest.NewServer(f.service.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

// call makes one request as role ("" = anonymous) and returns the status,
// exit-code header and body.
func (f *fixture) call(role, method, path, body string) (int, string, string) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.srv.URL+f.prefix+path, rd)
	if role != "" {
		req.Header.Set("Authorization", "token "+f.tokens[role])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	f.bodies = append(f.bodies, string(b))
	return resp.StatusCode, resp.Header.Get(ExitHeader), string(b)
}

// noSecrets searches every response seen for the consumer secret, the
// service's hub token, other users' tokens and raw auth_state.
func (f *fixture) noSecrets() {
	f.t.Helper()
	needles := []string{f.secret, "service-api-token", "auth-state-", "PRIVATE KEY"}
	for _, tok := range f.tokens {
		needles = append(needles, tok)
	}
	for _, b := range f.bodies {
		for _, n := range needles {
			if strings.Contains(b, n) {
				f.t.Errorf("a response carries %q:\n%.300s", n[:min(len(n), 12)]+"…", b)
			}
		}
	}
}

const notebook = "/home/jupyter-alice/course/hw1/hw1.ipynb"

// The authorization matrix: anonymous / no scope / student / grader /
// admin × every endpoint.
func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t)
	score := `{"notebook":"` + notebook + `","score":"0.8"}`
	type cell struct {
		status int
		exit   string
	}
	deny, anon := cell{403, "7"}, cell{401, "7"}
	ok := cell{200, "0"}
	for _, ep := range []struct {
		name, method, path, body              string
		anon, noscope, student, grader, admin cell
	}{
		{"health", "GET", "api/health", "", anon, deny, ok, ok, ok},
		{"sessions", "GET", "api/sessions", "", anon, deny, ok, ok, ok},
		{"sessions of another user", "GET", "api/sessions?user=bob", "", anon, deny, deny, ok, ok},
		{"resolve own", "GET", "api/resolve?notebook=" + url.QueryEscape(notebook), "", anon, deny, ok, ok, ok},
		{"passbacks", "GET", "api/passbacks", "", anon, deny, ok, ok, ok},
		{"passbacks of another user", "GET", "api/passbacks?user=bob", "", anon, deny, deny, ok, ok},
		{"score", "POST", "api/scores", score, anon, deny, deny, ok, ok},
		{"batch", "POST", "api/scores", `{"rows":[{"line":2,"username":"bob","notebook":"course/hw1/hw1.ipynb","score":"0.5"}]}`, anon, deny, deny, ok, ok},
		{"sync", "POST", "api/sync", "", anon, deny, deny, ok, ok},
		{"jwks", "GET", ".well-known/jwks.json", "", ok, ok, ok, ok, ok},
	} {
		for _, who := range []struct {
			role string
			want cell
		}{{"", ep.anon}, {"noscope", ep.noscope}, {"student", ep.student}, {"grader", ep.grader}, {"admin", ep.admin}} {
			status, exit, body := f.call(who.role, ep.method, ep.path, ep.body)
			if status != who.want.status || (ep.name != "jwks" && exit != who.want.exit) {
				t.Errorf("%s as %q: %d exit %s, want %d exit %s\n%.300s", ep.name, who.role, status, exit, who.want.status, who.want.exit, body)
			}
		}
	}
	// What a student sees is theirs only.
	_, _, body := f.call("student", "GET", "api/sessions", "")
	if !strings.Contains(body, `"alice"`) || strings.Contains(body, `"bob"`) {
		t.Errorf("student's sessions: %s", body)
	}
	_, _, body = f.call("student", "GET", "api/passbacks", "")
	if strings.Contains(body, `"bob"`) {
		t.Errorf("student sees bob's passbacks: %s", body)
	}
	// A student cannot resolve someone else's notebook.
	if status, _, _ := f.call("student", "GET", "api/resolve?notebook="+url.QueryEscape("/home/jupyter-bob/course/hw1/hw1.ipynb"), ""); status == 200 {
		t.Errorf("student resolved bob's notebook")
	}
	// The graders' scores reached the LMS.
	if g, ok := f.sim.Grade("src-alice"); !ok || g.Score != "0.8" {
		t.Errorf("LMS holds %+v %v for alice, want 0.8", g, ok)
	}
	if g, ok := f.sim.Grade("src-bob"); !ok || g.Score != "0.5" {
		t.Errorf("LMS holds %+v %v for bob, want 0.5", g, ok)
	}
	f.noSecrets()
}

// Errors carry the CLI's exit codes and texts: no session 3, bad score 2.
func TestErrorsCarryExitCodes(t *testing.T) {
	f := newFixture(t)
	status, exit, body := f.call("grader", "POST", "api/scores", `{"notebook":"/home/jupyter-alice/course/hw2/hw2.ipynb","score":"0.8"}`)
	if status != 404 || exit != "3" || !strings.Contains(body, `"exit_code": 3`) || !strings.Contains(body, "--launch ID") {
		t.Errorf("uncovered notebook: %d %s %s", status, exit, body)
	}
	status, exit, body = f.call("grader", "POST", "api/scores", `{"notebook":"`+notebook+`","score":"85"}`)
	if status != 400 || exit != "2" || !strings.Contains(body, "did you mean 85%") {
		t.Errorf("bad score: %d %s %s", status, exit, body)
	}
	status, exit, _ = f.call("grader", "POST", "api/scores", `{"notebook":`)
	if status != 400 || exit != "2" {
		t.Errorf("broken JSON: %d %s", status, exit)
	}
	status, _, _ = f.call("grader", "POST", "api/scores", `{"notebook":"x","score":"1","surprise":1}`)
	if status != 400 {
		t.Errorf("unknown field: %d", status)
	}
	big := `{"notebook":"` + strings.Repeat("a", MaxBody) + `"}`
	status, _, body = f.call("grader", "POST", "api/scores", big)
	if status != 400 || !strings.Contains(body, "larger than") {
		t.Errorf("huge body: %d %.200s", status, body)
	}
	if g, ok := f.sim.Grade("src-alice"); ok {
		t.Errorf("a refused request reached the LMS: %+v", g)
	}
	f.noSecrets()
}

// The browser flow: the page sends an anonymous browser to the hub's
// OAuth; the callback checks the state and starts a session; a cookie
// POST needs the CSRF token.
func TestBrowserLoginAndCSRF(t *testing.T) {
	f := newFixture(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(f.srv.URL + f.prefix)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || loc.Path != "/hub/api/oauth2/authorize" || loc.Query().Get("client_id") != "service-ltigrade" {
		t.Fatalf("anonymous page: %d %s", resp.StatusCode, loc)
	}
	state := loc.Query().Get("state")
	// A forged callback with another state is refused.
	resp, _ = c.Get(f.srv.URL + f.prefix + "oauth_callback?code=good-code&state=forged")
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("forged state: %d", resp.StatusCode)
	}
	resp, _ = c.Get(f.srv.URL + f.prefix + "oauth_callback?code=good-code&state=" + url.QueryEscape(state))
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != f.prefix {
		t.Fatalf("callback: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = c.Get(f.srv.URL + f.prefix)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `id="user">ta1<`) {
		t.Fatalf("page after login: %d\n%s", resp.StatusCode, page)
	}
	// journal a queued score, then retry it from the page
	g := f.service.Grader
	f.sim.Inject(lmssim.Fault{Status: 503, Repeat: 2})
	res, err := g.Score(context.Background(), grade.ScoreRequest{Notebook: notebook, Score: "0.7"})
	if err != nil || res.Passback.Status != store.StatusRetry {
		t.Fatalf("setup: %+v %v", res, err)
	}
	id := fmt.Sprint(res.Passback.ID)
	resp, _ = c.PostForm(f.srv.URL+f.prefix+"retry", url.Values{"id": {id}})
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("retry without CSRF token: %d", resp.StatusCode)
	}
	resp, _ = c.Get(f.srv.URL + f.prefix)
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page with a queued score:\n%s", page)
	}
	resp, _ = c.PostForm(f.srv.URL+f.prefix+"retry", url.Values{"id": {id}, "_csrf": {string(m[1])}})
	resp.Body.Close()
	if resp.StatusCode != 303 {
		t.Fatalf("retry: %d", resp.StatusCode)
	}
	if gr, ok := f.sim.Grade("src-alice"); !ok || gr.Score != "0.7" {
		t.Fatalf("the retried score did not reach the LMS: %+v %v", gr, ok)
	}
	f.bodies = append(f.bodies, string(page))
	f.noSecrets()
}
