package e2e

// The LTI 1.3 counterpart of TestHubEndToEnd: `ltigrade sandbox --lti13`
// is the platform, and the hub's own LTI13Authenticator (ltiauthenticator
// 1.6.3) verifies the id_tokens the sandbox signs, with its own code
// (PyJWT, the sandbox's JWKS). The browser is the Go HTTP client: the OIDC
// redirects and the auto-submitting form posts are plain HTTP.

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	lti13ClientID = "e2e-hub-client"
	// lti13Domain completes the sandbox students' emails, which
	// LTI13Authenticator's default username_key makes the hub usernames.
	lti13Domain = "lms.test"
)

// hubUser is the hub username of a sandbox student: the email claim.
func hubUser(student string) string { return student + "@" + lti13Domain }

// session13 is the part of `sessions list --json` the LTI 1.3 test checks.
type session13 struct {
	ID             int64  `json:"id"`
	Username       string `json:"username"`
	LTIVersion     string `json:"lti_version"`
	Platform       string `json:"platform"`
	ClientID       string `json:"client_id"`
	DeploymentID   string `json:"deployment_id"`
	LTIUserID      string `json:"lti_user_id"`
	ResourceLinkID string `json:"resource_link_id"`
	Assignment     string `json:"assignment"`
	CourseID       string `json:"course_id"`
	LineItem       string `json:"lineitem"`
	LineItems      string `json:"lineitems"`
	Repo           string `json:"repo"`
	Checkout       string `json:"checkout"`
	Opened         string `json:"opened"`
	OpenedIsFile   bool   `json:"opened_is_file"`
	NextSigned     bool   `json:"next_signed"`
	UnsignedNext   string `json:"unsigned_next_ignored"`
}

func (e *e2e) sessions13(args ...string) []session13 {
	e.t.Helper()
	out := e.ltigrade(append([]string{"sessions", "list", "--json"}, args...)...)
	var ss []session13
	if err := json.Unmarshal([]byte(out), &ss); err != nil {
		e.t.Fatalf("sessions list --json: %v\n%s", err, out)
	}
	return ss
}

func findSession13(ss []session13, user, resourceLink string) *session13 {
	for i := range ss {
		if ss[i].Username == user && ss[i].ResourceLinkID == resourceLink {
			return &ss[i]
		}
	}
	return nil
}

// platformScore is one entry of the sandbox's /scores.json.
type platformScore struct {
	LineItemID   string  `json:"lineitem_id"`
	UserID       string  `json:"userId"`
	ScoreGiven   float64 `json:"scoreGiven"`
	ScoreMaximum float64 `json:"scoreMaximum"`
	Writes       int     `json:"writes"`
}

func (e *e2e) platformScores(t *testing.T) []platformScore {
	t.Helper()
	resp, err := http.Get(e.sandbox + "/scores.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Scores []platformScore `json:"scores"`
		Stats  map[string]int  `json:"stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("/scores.json: %v", err)
	}
	return v.Scores
}

func TestHubEndToEndLTI13(t *testing.T) {
	env := loadHubEnv(t)
	start := time.Now()
	e := setup13(t, env)
	t.Logf("set-up (build, key, course repo, hub, sandbox) took %s", time.Since(start).Round(time.Millisecond))

	browsers := map[string]*browser{}
	for _, s := range []string{"alice", "bob", "dave", "mallory"} {
		browsers[s] = newBrowser(t, s)
	}

	step(t, "1 two students launch two assignments through LTI13Authenticator, nbgitpuller clones", func(t *testing.T) {
		for _, s := range students {
			for _, a := range assignments {
				loc, took := browsers[s].login13(t, e, s, a.id, nil)
				t.Logf("%s/%s: OIDC login %s → %s", s, a.id, took.Round(time.Millisecond), loc)
				link := pullLinkOf(t, loc)
				if got, want := link.Get("urlpath"), "tree/"+repoDir+"/"+a.path; got != want || link.Get("repo") != e.repoURL {
					t.Fatalf("%s/%s: the hub redirected to repo=%q urlpath=%q, want %q and %q", s, a.id, link.Get("repo"), got, e.repoURL, want)
				}
				user := hubUser(s)
				final, status := browsers[s].follow(t, e.hub.URL, loc)
				t.Logf("%s/%s: redirects ended at %d %s", s, a.id, status, final.Path)
				browsers[s].waitUserPage(t, e.hub.URL, user, "git-pull?"+link.Encode(), 120*time.Second)
				browsers[s].gitPull(t, e.hub.URL, user, link.Get("repo"), link.Get("branch"), repoDir, 120*time.Second)
				if _, err := os.Stat(filepath.Join(e.home(user), repoDir, a.path)); err != nil {
					t.Fatalf("%s/%s: nbgitpuller did not clone the notebook: %v", s, a.id, err)
				}
			}
		}
	})

	var before []session13
	step(t, "2 sessions list: four LTI 1.3 sessions, signed links, the platform's line items", func(t *testing.T) {
		ss := e.sessions13()
		for deadline := time.Now().Add(recordDelay + recordTimeout + loginMargin); len(ss) < 4 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			ss = e.sessions13()
		}
		before = ss
		if len(ss) != 4 {
			t.Fatalf("sessions list --json: %d sessions, want 4:\n%s", len(ss), jsonText(ss))
		}
		for _, s := range students {
			for _, a := range assignments {
				got := findSession13(ss, hubUser(s), a.id)
				if got == nil {
					t.Fatalf("no session of %s for resource link %s:\n%s", hubUser(s), a.id, jsonText(ss))
				}
				if got.LTIVersion != "1.3" || got.Platform != e.sandbox || got.ClientID != lti13ClientID || got.LTIUserID != s ||
					got.DeploymentID == "" || got.Repo != e.repoURL || got.Checkout != repoDir || got.Opened != repoDir+"/"+a.path ||
					!got.OpenedIsFile || !got.NextSigned || got.UnsignedNext != "" ||
					got.LineItem != e.sandbox+"/lineitems/"+a.id+"/lineitem?type_id=3" || got.LineItems != e.sandbox+"/lineitems" {
					t.Errorf("%s/%s: session\n%s\nwant LTI 1.3 from %s (client %s, sub %s), a signed link opening %s/%s, line item %s",
						s, a.id, jsonText(got), e.sandbox, lti13ClientID, s, repoDir, a.path, a.id)
				}
			}
		}
		out := e.ltigrade("sessions", "list")
		if strings.Count(out, "\t1.3\t") != 4 {
			t.Errorf("sessions list does not show four LTI 1.3 sessions:\n%s", out)
		}
	})

	step(t, "3 score a notebook: the platform gets it for the right line item and sub", func(t *testing.T) {
		nb := filepath.Join(e.home(hubUser("alice")), repoDir, "hw1", "hw1.ipynb")
		out := e.ltigrade("score", nb, "17", "--out-of", "20")
		t.Logf("ltigrade score: %s", strings.TrimSpace(out))
		scores := e.platformScores(t)
		if len(scores) != 1 || scores[0].LineItemID != "hw1" || scores[0].UserID != "alice" ||
			scores[0].ScoreGiven != 17 || scores[0].ScoreMaximum != 20 || scores[0].Writes != 1 {
			t.Fatalf("the platform holds %+v, want one score 17/20 for line item hw1 and sub alice", scores)
		}
		if res := strings.TrimSpace(e.ltigrade("result", "read", nb)); res != "0.85 (17/20)" {
			t.Errorf("result read: %q", res)
		}
	})

	step(t, "4 the user server's environment has the LTI_* variables", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(e.home(hubUser("alice")), ".e2e-spawn-env"))
		if err != nil {
			t.Fatalf("the single-user server did not dump its environment: %v", err)
		}
		vars := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				vars[k] = v
			}
		}
		alice := findSession13(before, hubUser("alice"), "hw1")
		// alice's server was spawned by her first launch (hw1).
		for k, want := range map[string]string{"LTI_CONTEXT_ID": alice.CourseID, "LTI_RESOURCE_LINK_ID": "hw1",
			"LTI_ROLES": "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"} {
			if got, ok := vars[k]; !ok || got != want {
				t.Errorf("%s = %q (set: %v), want %q", k, got, ok, want)
			}
		}
		for k := range vars {
			if strings.HasPrefix(k, "LTI_") && (strings.Contains(k, "LINEITEM") || strings.Contains(k, "TOKEN")) {
				t.Errorf("%s reached the user's server", k)
			}
		}
	})

	step(t, "5 a score right after a launch lands in that launch's line item", func(t *testing.T) {
		// dave's Homework 1 launch is recorded; then he launches Homework 2
		// and a grader scores his hw2 notebook at once, while the hook's
		// recorder still waits: the score must catch up with the spool.
		browsers["dave"].login13(t, e, "dave", "hw1", nil)
		for deadline := time.Now().Add(recordDelay + recordTimeout + loginMargin); len(e.sessions13("--user", hubUser("dave"))) < 1; {
			if time.Now().After(deadline) {
				t.Fatalf("dave's Homework 1 launch was not recorded")
			}
			time.Sleep(100 * time.Millisecond)
		}
		browsers["dave"].login13(t, e, "dave", "hw2", nil)
		nb := filepath.Join(e.home(hubUser("dave")), repoDir, "hw2", "hw2.ipynb")
		out, errOut, code := e.ltigradeCode("score", nb, "6", "--out-of", "10")
		if code != 0 {
			t.Fatalf("ltigrade score right after the launch: exit %d\n%s%s", code, out, errOut)
		}
		var hw1, hw2 []platformScore
		for _, s := range e.platformScores(t) {
			switch {
			case s.UserID == "dave" && s.LineItemID == "hw1":
				hw1 = append(hw1, s)
			case s.UserID == "dave" && s.LineItemID == "hw2":
				hw2 = append(hw2, s)
			}
		}
		if len(hw1) != 0 || len(hw2) != 1 || hw2[0].ScoreGiven != 6 {
			t.Fatalf("dave's scores: hw1 %+v, hw2 %+v; want only hw2 6/10", hw1, hw2)
		}
	})

	step(t, "6 an unsigned next in the login initiation: the hub follows it, ltigrade keeps the signed link", func(t *testing.T) {
		// mallory replays her Homework 1 login with Homework 2's link as
		// the login initiation's next, which the browser sends unsigned.
		// ltiauthenticator redirects there; ltigrade records what the
		// id_token's target_link_uri says, and that it ignored the other.
		other := e.loginForm(t, "mallory", "hw2")
		next := nextOf(t, other.Params["target_link_uri"])
		loc, _ := browsers["mallory"].login13(t, e, "mallory", "hw1", map[string]string{"next": next})
		if pl := pullLinkOf(t, loc); pl.Get("urlpath") != "tree/"+repoDir+"/hw2/hw2.ipynb" {
			t.Fatalf("the hub went to %q, not the unsigned next", loc)
		}
		var s *session13
		for deadline := time.Now().Add(recordDelay + recordTimeout + loginMargin); s == nil; {
			s = findSession13(e.sessions13("--user", hubUser("mallory")), hubUser("mallory"), "hw1")
			if s == nil && time.Now().After(deadline) {
				t.Fatalf("mallory's launch was not recorded")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if s.Opened != repoDir+"/hw1/hw1.ipynb" || !s.NextSigned || !strings.Contains(s.UnsignedNext, "hw2") {
			t.Fatalf("mallory's Homework 1 session %s: want hw1 opened from the signed link, hw2's next ignored", jsonText(s))
		}
	})

	step(t, "7 ltiauthenticator checks the sandbox's signature: a re-signed id_token is refused", func(t *testing.T) {
		// The flow up to the form post, then the same claims signed by a
		// key the platform's JWKS does not hold (same kid).
		b := browsers["bob"]
		auth := b.loginToAuth(t, e, "bob", "hw1", nil)
		post := b.authorize(t, auth)
		forged := resign(t, post.Params["id_token"])
		form := url.Values{"id_token": {forged}, "state": {post.Params["state"]}}
		resp, err := b.noRedir.PostForm(post.Action, form)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("the hub accepted an id_token the platform did not sign: %s (Location %q)", resp.Status, resp.Header.Get("Location"))
		}
		// Refused for its signature (PyJWT's words), not for a state or
		// nonce the test got wrong.
		if !bytes.Contains(body, []byte("Signature verification failed")) {
			t.Fatalf("the hub refused the re-signed id_token, but not for its signature: %s\n%s", resp.Status, short(body))
		}
		t.Logf("re-signed id_token refused: %s %s", resp.Status, short(bytes.TrimSpace(body)))
	})
	t.Logf("whole test took %s", time.Since(start).Round(time.Millisecond))
}

// setup13 builds ltigrade, a tool key, the course repo and config,
// installs the hook, and starts the hub (LTI13Authenticator trusting the
// sandbox) and `ltigrade sandbox --lti13`.
func setup13(t *testing.T, env hubEnv) *e2e {
	tmp := t.TempDir()
	e := &e2e{t: t, tmp: tmp}
	e.bin = buildLtigrade(t, filepath.Join(tmp, "bin"))
	e.repoURL = makeCourseRepo(t, filepath.Join(tmp, "git"))
	e.homeTmpl = filepath.Join(tmp, "home", "jupyter-{username}")
	e.database = filepath.Join(tmp, "var", "ltigrade.db")
	e.spool = filepath.Join(tmp, "var", "spool")
	// The sandbox's URL is the platform's issuer, which both the hub's and
	// ltigrade's configs name: pick its port first.
	port := freePorts(t, 1)[0]
	e.sandbox = fmt.Sprintf("http://127.0.0.1:%d", port)
	keyFile := filepath.Join(tmp, "etc", "lti13.pem")
	mustMkdir(t, filepath.Dir(keyFile))
	e.config = filepath.Join(tmp, "etc", "config.toml")
	mustWrite(t, e.config, fmt.Sprintf(`database = %q

[paths]
home = %q

[[lti13.platforms]]
issuer = %q
client_id = %q
token_url = %q
private_key_file = %q

[hub]
spool_dir = %q
record_timeout = %q

[passback]
timeout = "10s"
`, e.database, e.homeTmpl, e.sandbox, lti13ClientID, e.sandbox+"/token", keyFile, e.spool, recordTimeout.String()), 0o600)
	e.ltigrade("keys", "generate", "--out", keyFile)

	confd := filepath.Join(tmp, "confd")
	mustMkdir(t, confd)
	e.ltigrade("hub", "install", "--config-dir", confd)
	subconfig := filepath.Join(confd, "ltigrade.py")

	// startHub configures LTI11Authenticator; these lines, before the
	// hook's subconfig, make LTI13Authenticator the hub's authenticator.
	e.hub = startHub(t, env, hubOptions{
		Dir:      filepath.Join(tmp, "hub"),
		HomeTmpl: e.homeTmpl,
		Before: fmt.Sprintf(`c.JupyterHub.authenticator_class = "ltiauthenticator.lti13.auth.LTI13Authenticator"
c.LTI13Authenticator.issuer = %s
c.LTI13Authenticator.client_id = [%s]
c.LTI13Authenticator.authorize_url = %s
c.LTI13Authenticator.jwks_endpoint = %s
`, py(e.sandbox), py(lti13ClientID), py(e.sandbox+"/auth"), py(e.sandbox+"/jwks")),
		Subconfig: subconfig,
	})

	urlFile := filepath.Join(tmp, "sandbox.url")
	args := []string{"--config", e.config, "sandbox", "--lti13", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--url-file", urlFile, "--hub-url", e.hub.URL, "--course-repo", e.repoURL, "--client-id", lti13ClientID}
	for _, s := range []string{"alice", "bob", "dave", "mallory"} {
		args = append(args, "--student", s)
	}
	for _, a := range assignments {
		args = append(args, "--assignment", a.id+"="+a.path)
	}
	cmd := exec.Command(e.bin, args...)
	cmd.Env = cleanEnv("HOME=" + tmp)
	sandboxLog := filepath.Join(tmp, "sandbox.log")
	sb := startProc(t, "ltigrade sandbox --lti13", sandboxLog, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the sandbox's log:\n%s", tail(sandboxLog, 40))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(e.sandbox + "/jwks")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if sb.exited() {
			t.Fatalf("ltigrade sandbox --lti13 exited (%v):\n%s", sb.err, tail(sandboxLog, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("ltigrade sandbox --lti13 did not answer %s/jwks within 30s (%v)", e.sandbox, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return e
}

// loginForm is the sandbox's login initiation for a student's launch.
func (e *e2e) loginForm(t *testing.T, student, assignment string) launchForm {
	t.Helper()
	u := e.sandbox + "/lti13/login.json?" + url.Values{"student": {student}, "assignment": {assignment}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var f launchForm
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &f) != nil || f.Action == "" {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, body)
	}
	return f
}

// loginToAuth posts the login initiation to the hub (with extra fields
// added) and returns the authorization request the hub redirects to.
func (b *browser) loginToAuth(t *testing.T, e *e2e, student, assignment string, extra map[string]string) string {
	t.Helper()
	f := e.loginForm(t, student, assignment)
	form := url.Values{}
	for k, v := range f.Params {
		form.Set(k, v)
	}
	for k, v := range extra {
		form.Set(k, v)
	}
	resp, err := b.noRedir.PostForm(f.Action, form)
	if err != nil {
		t.Fatalf("%s: POST %s: %v", b.name, f.Action, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, e.sandbox+"/auth?") {
		t.Fatalf("%s: the hub answered the login initiation with %s (Location %q), want a redirect to %s/auth\n%s",
			b.name, resp.Status, loc, e.sandbox, short(body))
	}
	return loc
}

var (
	formActionRE = regexp.MustCompile(`<form id="launch" method="post" action="([^"]*)"`)
	hiddenRE     = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// authorize follows the hub's redirect to the platform's authorization
// endpoint and reads the page's auto-submitting form post.
func (b *browser) authorize(t *testing.T, authURL string) launchForm {
	t.Helper()
	resp, err := b.noRedir.Get(authURL)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", b.name, authURL, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := formActionRE.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("%s: the platform answered the authorization request with %s\n%s", b.name, resp.Status, short(body))
	}
	f := launchForm{Action: html.UnescapeString(string(m[1])), Params: map[string]string{}}
	for _, h := range hiddenRE.FindAllSubmatch(body, -1) {
		f.Params[html.UnescapeString(string(h[1]))] = html.UnescapeString(string(h[2]))
	}
	return f
}

// login13 is a whole LTI 1.3 launch as a browser makes it: the login
// initiation to the hub, the hub's redirect to the platform, the platform's
// form post of the id_token to the hub's callback. It returns where the
// hub then redirects (the launch's next) and how long the callback took.
func (b *browser) login13(t *testing.T, e *e2e, student, assignment string, extra map[string]string) (string, time.Duration) {
	t.Helper()
	post := b.authorize(t, b.loginToAuth(t, e, student, assignment, extra))
	if post.Action != e.hub.URL+"/hub/lti13/oauth_callback" || post.Params["id_token"] == "" || post.Params["state"] == "" {
		t.Fatalf("%s: the platform's form post %+v", b.name, post)
	}
	form := url.Values{}
	for k, v := range post.Params {
		form.Set(k, v)
	}
	start := time.Now()
	resp, err := b.noRedir.PostForm(post.Action, form)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s: POST %s: %v", b.name, post.Action, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s: the hub refused the id_token: %s\n%s", b.name, resp.Status, short(body))
	}
	return loc, took
}

// nextOf is the next= link inside a target_link_uri, decoded once (what
// ltiauthenticator and ltigrade read from it).
func nextOf(t *testing.T, target string) string {
	t.Helper()
	_, raw, ok := strings.Cut(target, "next=")
	if !ok {
		t.Fatalf("target_link_uri %q has no next=", target)
	}
	next, err := url.QueryUnescape(raw)
	if err != nil {
		t.Fatal(err)
	}
	return next
}

// pullLinkOf returns the query of the nbgitpuller link the hub redirected
// to.
func pullLinkOf(t *testing.T, loc string) url.Values {
	t.Helper()
	path, query, _ := strings.Cut(loc, "?")
	if path != "/hub/user-redirect/git-pull" {
		t.Fatalf("the hub redirected to %q, not an nbgitpuller link through /hub/user-redirect", loc)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatalf("redirect %q: %v", loc, err)
	}
	return q
}

// resign signs an id_token's header and claims again with a fresh key.
func resign(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token %q", tok)
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}
