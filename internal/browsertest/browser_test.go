package browsertest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/testenv"
)

// site is a tiny app shaped like the status page: a login form that sets a
// cookie, a page behind it with a CSRF-protected retry button, and a result
// page. It records what it was really sent, which is what the tests check.
type site struct {
	mu        sync.Mutex
	sessions  map[string]string // cookie value -> user
	csrf      map[string]string // cookie value -> form token
	anonymous int               // GET /app without a valid cookie
	posts     []retry
}

type retry struct{ user, item, receipt string }

const (
	siteUser     = "grader"
	sitePassword = "letmein"
)

func newSite() *site {
	return &site{sessions: map[string]string{}, csrf: map[string]string{}}
}

func randomHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var pages = template.Must(template.New("").Parse(`
{{define "login"}}<!doctype html><title>Sign in</title>
<form method="post" action="/login">
<label>User <input id="user" name="user"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="signin" type="submit">Sign in</button></form>{{end}}
{{define "app"}}<!doctype html><title>App</title>
<p>Signed in as <span id="whoami">{{.User}}</span></p>
<p id="js">no js</p><script>document.getElementById("js").textContent = "js ran";</script>
<form method="post" action="/retry"><input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="item" value="7"><button id="retry" type="submit">Retry</button></form>{{end}}
{{define "result"}}<!doctype html><title>Done</title>
<p id="result">retried item {{.Item}}, receipt {{.Receipt}}</p>{{end}}
`))

func (s *site) user(r *http.Request) (cookie, user string) {
	c, err := r.Cookie("session")
	if err != nil {
		return "", ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.Value, s.sessions[c.Value]
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/login" && r.Method == http.MethodGet:
		pages.ExecuteTemplate(w, "login", nil)
	case r.URL.Path == "/login" && r.Method == http.MethodPost:
		if r.PostFormValue("user") != siteUser || r.PostFormValue("password") != sitePassword {
			http.Error(w, "wrong user or password", http.StatusUnauthorized)
			return
		}
		cookie := randomHex()
		s.mu.Lock()
		s.sessions[cookie] = siteUser
		s.csrf[cookie] = randomHex()
		s.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "session", Value: cookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, "/app", http.StatusSeeOther)
	case r.URL.Path == "/app" && r.Method == http.MethodGet:
		cookie, user := s.user(r)
		if user == "" {
			s.mu.Lock()
			s.anonymous++
			s.mu.Unlock()
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		s.mu.Lock()
		token := s.csrf[cookie]
		s.mu.Unlock()
		pages.ExecuteTemplate(w, "app", map[string]string{"User": user, "CSRF": token})
	case r.URL.Path == "/retry" && r.Method == http.MethodPost:
		cookie, user := s.user(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		if user == "" || r.PostFormValue("csrf") != s.csrf[cookie] {
			http.Error(w, "not signed in or stale form", http.StatusForbidden)
			return
		}
		p := retry{user: user, item: r.PostFormValue("item"), receipt: randomHex()}
		s.posts = append(s.posts, p)
		pages.ExecuteTemplate(w, "result", map[string]string{"Item": p.item, "Receipt": p.receipt})
	default:
		http.NotFound(w, r)
	}
}

// TestBrowserLoginAndPost drives the whole flow a status page test needs:
// sign in through a form, keep the cookie, press a button that POSTs, read
// the answer, keep screenshots; once with JavaScript and once without.
func TestBrowserLoginAndPost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		noJS   bool
		jsText string
	}{
		{"javascript", false, "js ran"},
		{"no-javascript", true, "no js"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testenv.Browser(t)
			d.DisableJavaScript = tc.noJS
			s := newSite()
			srv := httptest.NewServer(s)
			defer srv.Close()

			res, err := d.Run(
				testenv.Goto(srv.URL+"/app"),
				testenv.WaitFor("#signin"),
				testenv.Fill("#user", siteUser),
				testenv.Fill("#password", sitePassword),
				testenv.Click("#signin"),
				testenv.WaitFor("#retry"),
				testenv.ReadText("#js"),
				testenv.Screenshot("signed-in"),
				testenv.Click("#retry"),
				testenv.WaitFor("#result"),
				testenv.ReadText("#result"),
				testenv.Screenshot("result"),
			)
			if err != nil {
				t.Fatal(err)
			}

			s.mu.Lock()
			posts, anonymous := s.posts, s.anonymous
			s.mu.Unlock()
			// The fresh profile had no cookie, so the first visit was sent
			// to the login form.
			if anonymous != 1 {
				t.Errorf("the server saw %d anonymous visits to /app, want 1 (the first, before signing in)", anonymous)
			}
			// The click reached the server, signed in and with the form's
			// CSRF token.
			if len(posts) != 1 || posts[0].user != siteUser || posts[0].item != "7" {
				t.Fatalf("the server saw retries %+v, want one by %s for item 7", posts, siteUser)
			}
			if len(res.Texts) != 2 {
				t.Fatalf("texts %q, want two", res.Texts)
			}
			if res.Texts[0] != tc.jsText {
				t.Errorf("#js reads %q, want %q (JavaScript disabled: %v)", res.Texts[0], tc.jsText, tc.noJS)
			}
			// The page shows the receipt only the server knew.
			if want := "retried item 7, receipt " + posts[0].receipt; res.Texts[1] != want {
				t.Errorf("#result reads %q, want %q", res.Texts[1], want)
			}
			if u, err := url.Parse(res.URL); err != nil || u.Path != "/retry" {
				t.Errorf("final URL %q, want the /retry result page", res.URL)
			}
			checkScreenshots(t, d.Artifacts, res.Screenshots, "signed-in.png", "result.png")
		})
	}
}

func checkScreenshots(t *testing.T, dir string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("screenshots %q, want %q", got, want)
	}
	for i, f := range got {
		if f != filepath.Join(dir, want[i]) {
			t.Errorf("screenshot %d is %s, want %s", i, f, filepath.Join(dir, want[i]))
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s is not a PNG (%d bytes)", f, len(b))
		}
	}
}

// TestBrowserFailedStep: a step that cannot succeed is an error naming it,
// with a screenshot of the page as it was, not a hang or a pass.
func TestBrowserFailedStep(t *testing.T) {
	d := testenv.Browser(t)
	d.StepTimeout = 2 * time.Second // the element never appears: no point waiting 15s
	srv := httptest.NewServer(newSite())
	defer srv.Close()

	res, err := d.Run(testenv.Goto(srv.URL+"/login"), testenv.Click("#no-such-button"))
	if err == nil {
		t.Fatalf("clicking a missing button succeeded: %+v", res)
	}
	if !strings.Contains(err.Error(), "step 1") || !strings.Contains(err.Error(), "#no-such-button") {
		t.Errorf("error %q does not name step 1 and its selector", err)
	}
	if res == nil {
		t.Fatal("no result with the error")
	}
	checkScreenshots(t, d.Artifacts, res.Screenshots, "failure-step-1.png")
}

// TestBrowserOwnScript: a test can bring its own playwright driver and start
// the browser with launch.mjs.
func TestBrowserOwnScript(t *testing.T) {
	d := testenv.Browser(t)
	title := "title-" + randomHex()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<!doctype html><title>%s</title><p>hello</p>", title)
	}))
	defer srv.Close()

	out, err := d.RunScript(filepath.Join("testdata", "title.mjs"), map[string]string{"url": srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != title {
		t.Errorf("the script read title %q, want %q", got, title)
	}
}
