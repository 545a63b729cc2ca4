// Package e2e drives the real thing: a JupyterHub 5 with ltiauthenticator,
// nbgitpuller and ltigrade's installed hook, launched into by `ltigrade
// sandbox` acting as the LMS. It has tests only.
package e2e

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

const (
	consumerKey = "e2e-course-key"
	// consumerSecret must never show up in a user server's environment.
	consumerSecret = "e2e-s3cr3t-0xBADC0FFEE"
	// recordTimeout is the hook's [hub] record_timeout.
	recordTimeout = 2 * time.Second
	// loginMargin is what a login may take beyond recordTimeout when
	// ltigrade fails or hangs: the hub's own work on a loaded CI machine.
	loginMargin = 3 * time.Second
	// recordDelay is how long the hook lets logins accumulate before its
	// background `record --spool` (hook.py's _LTIGRADE_DEBOUNCE).
	recordDelay = 3 * time.Second
	repoDir     = "materials" // the course repo's name, so nbgitpuller's checkout folder
)

// e2e is the test's world: binaries, files and servers.
type e2e struct {
	t        *testing.T
	tmp      string
	bin      string // the ltigrade binary
	config   string // its config file
	database string
	spool    string
	homeTmpl string // template of users' roots, TLJH style
	repoURL  string // the course repo nbgitpuller clones
	sandbox  string // the sandbox LMS's URL
	hub      *hub
}

// ltigrade runs the CLI with the test's config and returns stdout; a
// non-zero exit fails the test.
func (e *e2e) ltigrade(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.ltigradeCode(args...)
	if code != 0 {
		e.t.Fatalf("ltigrade %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (e *e2e) ltigradeCode(args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(e.bin, append([]string{"--config", e.config}, args...)...)
	cmd.Env = cleanEnv("HOME="+e.tmp, "XDG_CONFIG_HOME="+filepath.Join(e.tmp, ".config"), "XDG_DATA_HOME="+filepath.Join(e.tmp, ".local", "share"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("ltigrade %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// home is a user's notebook root, as the spawner makes it.
func (e *e2e) home(user string) string {
	return strings.ReplaceAll(e.homeTmpl, "{username}", user)
}

// session is the part of `sessions list --json` this test checks.
type session struct {
	ID             int64  `json:"id"`
	LaunchID       int64  `json:"launch_id"`
	LaunchCount    int    `json:"launch_count"`
	Username       string `json:"username"`
	LTIVersion     string `json:"lti_version"`
	Platform       string `json:"platform"`
	LTIUserID      string `json:"lti_user_id"`
	ResourceLinkID string `json:"resource_link_id"`
	Assignment     string `json:"assignment"`
	CourseID       string `json:"course_id"`
	OutcomeURL     string `json:"outcome_url"`
	SourcedID      string `json:"sourcedid"`
	NextURL        string `json:"next_url"`
	Repo           string `json:"repo"`
	Checkout       string `json:"checkout"`
	Opened         string `json:"opened"`
	OpenedIsFile   bool   `json:"opened_is_file"`
}

func (e *e2e) sessions(args ...string) []session {
	e.t.Helper()
	out := e.ltigrade(append([]string{"sessions", "list", "--json"}, args...)...)
	var ss []session
	if err := json.Unmarshal([]byte(out), &ss); err != nil {
		e.t.Fatalf("sessions list --json: %v\n%s", err, out)
	}
	return ss
}

// assignments of the course: sandbox ID → notebook path in the repo.
var assignments = []struct{ id, path string }{
	{"hw1", "hw1/hw1.ipynb"},
	{"hw2", "hw2/hw2.ipynb"},
}

// students who launch with a working database; carol launches only while
// it is broken, so her session exists only through the spool.
var students = []string{"alice", "bob"}

func TestHubEndToEnd(t *testing.T) {
	env := loadHubEnv(t)
	start := time.Now()
	e := setup(t, env)
	t.Logf("set-up (build, course repo, sandbox, hub) took %s", time.Since(start).Round(time.Millisecond))

	browsers := map[string]*browser{}
	for _, s := range append(students, "carol", "dave") {
		browsers[s] = newBrowser(t, s)
	}
	resourceLinks := map[string]string{} // "alice/hw1" → resource_link_id sent by the sandbox

	step(t, "1 launch two students into two assignments, nbgitpuller clones", func(t *testing.T) {
		for _, s := range students {
			for _, a := range assignments {
				f := getLaunchForm(t, e.sandbox, s, a.id)
				resourceLinks[s+"/"+a.id] = f.Params["resource_link_id"]
				_, loc, took := browsers[s].login(t, f)
				t.Logf("%s/%s: login %s → %s", s, a.id, took.Round(time.Millisecond), loc)
				if !strings.Contains(loc, "git-pull") {
					t.Fatalf("%s/%s: the hub redirected to %q, not the nbgitpuller link", s, a.id, loc)
				}
				final, status := browsers[s].follow(t, e.hub.URL, loc)
				t.Logf("%s/%s: redirects ended at %d %s", s, a.id, status, final.Path)
				// The nbgitpuller page the link names, as the browser reaches
				// it once the server is up; then its script's API call.
				link := pullLink(t, f)
				if got, want := link.Get("urlpath"), "tree/"+repoDir+"/"+a.path; got != want || link.Get("repo") != e.repoURL {
					t.Fatalf("%s/%s: nbgitpuller link repo=%q urlpath=%q, want %q and %q", s, a.id, link.Get("repo"), got, e.repoURL, want)
				}
				browsers[s].waitUserPage(t, e.hub.URL, s, "git-pull?"+link.Encode(), 120*time.Second)
				browsers[s].gitPull(t, e.hub.URL, s, link.Get("repo"), link.Get("branch"), repoDir, 120*time.Second)
				nb := filepath.Join(e.home(s), repoDir, a.path)
				if _, err := os.Stat(nb); err != nil {
					t.Fatalf("%s/%s: nbgitpuller did not clone the notebook: %v", s, a.id, err)
				}
			}
		}
	})

	var before []session
	step(t, "2 sessions list shows four sessions with checkouts and notebooks", func(t *testing.T) {
		// The hook records in the background, batching a burst of logins
		// for up to a second: allow for that.
		ss := e.sessions()
		for deadline := time.Now().Add(recordDelay + recordTimeout + loginMargin); len(ss) < 4 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			ss = e.sessions()
		}
		before = ss
		if len(ss) != 4 {
			t.Fatalf("sessions list --json: %d sessions, want 4:\n%s", len(ss), jsonText(ss))
		}
		for _, s := range students {
			for _, a := range assignments {
				got := findSession(ss, s, resourceLinks[s+"/"+a.id])
				if got == nil {
					t.Fatalf("no session for %s with resource link %q:\n%s", s, resourceLinks[s+"/"+a.id], jsonText(ss))
				}
				want := session{Username: s, LTIVersion: "1.1", Platform: consumerKey, Repo: e.repoURL,
					Checkout: repoDir, Opened: repoDir + "/" + a.path, OpenedIsFile: true}
				if got.LTIVersion != want.LTIVersion || got.Platform != want.Platform || got.Repo != want.Repo ||
					got.Checkout != want.Checkout || got.Opened != want.Opened || got.OpenedIsFile != want.OpenedIsFile {
					t.Errorf("%s/%s: session\n%s\nwant lti_version %q platform %q repo %q checkout %q opened %q opened_is_file %v",
						s, a.id, jsonText(got), want.LTIVersion, want.Platform, want.Repo, want.Checkout, want.Opened, want.OpenedIsFile)
				}
				if !strings.HasSuffix(got.SourcedID, ":"+a.id+":"+s) || got.OutcomeURL == "" {
					t.Errorf("%s/%s: sourcedid %q outcome_url %q, want <context>:%s:%s and the sandbox's outcome service",
						s, a.id, got.SourcedID, got.OutcomeURL, a.id, s)
				}
			}
		}
	})

	step(t, "3 score an absolute notebook path and the LMS gets it", func(t *testing.T) {
		nb := filepath.Join(e.home("alice"), repoDir, "hw1", "hw1.ipynb")
		out := e.ltigrade("score", nb, "0.85")
		t.Logf("ltigrade score %s 0.85: %s", nb, strings.TrimSpace(out))
		grades := e.grades(t)
		var hit []map[string]any
		for _, g := range grades {
			if strings.HasSuffix(gradeSourcedID(g), ":hw1:alice") {
				hit = append(hit, g)
			} else {
				t.Errorf("the sandbox holds a grade for another sourcedid: %v", g)
			}
		}
		if len(hit) != 1 {
			t.Fatalf("the sandbox holds %d grades for alice's hw1, want 1: %v", len(hit), grades)
		}
		if score := gradeScore(hit[0]); score != 0.85 {
			t.Fatalf("the sandbox holds %v for alice's hw1, want 0.85", hit[0])
		}
		if w, ok := hit[0]["writes"].(float64); ok && w != 1 {
			t.Errorf("the sandbox received alice's hw1 grade %v times, want once", w)
		}
	})

	step(t, "4a database unusable: the login succeeds fast and the launch is spooled", func(t *testing.T) {
		// As root, chmod cannot make a file unwritable, so the database
		// file (and its WAL files) is swapped for a directory: every
		// `ltigrade record` fails at once with "unable to open database".
		restore := e.breakDatabase(t)
		defer restore()
		e.launchWhileBroken(t, browsers["carol"], "carol", "hw1", recordTimeout+loginMargin)
	})
	step(t, "4a restored: sync ingests the spooled launch", func(t *testing.T) {
		e.syncAndCheck(t, "carol", 5)
	})

	step(t, "4b database locked: the login goes on, the background record gives up after record_timeout", func(t *testing.T) {
		// A writer holding SQLite's write lock stalls `ltigrade record` on
		// its busy timeout (15 s): the hook must stop waiting after
		// record_timeout, spool the launch, and not record it twice.
		release := e.lockDatabase(t)
		defer release()
		// The login does not wait for ltigrade at all (it records in the
		// background); the hook's message comes after record_timeout.
		e.launchWhileBroken(t, browsers["carol"], "carol", "hw2", recordTimeout+loginMargin)
	})
	step(t, "4b released: sync ingests it, each launch recorded once", func(t *testing.T) {
		e.syncAndCheck(t, "carol", 6)
		// Give a record the hook failed to stop the chance to land late.
		time.Sleep(recordTimeout)
		all := e.sessions("--all", "--user", "carol")
		if len(all) != 2 {
			t.Fatalf("carol made 2 launches; sessions list --all shows %d:\n%s", len(all), jsonText(all))
		}
	})

	step(t, "5 the user server's environment has the LTI_* variables", func(t *testing.T) {
		dump := filepath.Join(e.home("alice"), ".e2e-spawn-env")
		b, err := os.ReadFile(dump)
		if err != nil {
			t.Fatalf("the single-user server did not dump its environment: %v", err)
		}
		vars := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				vars[k] = v
			}
			if strings.Contains(line, consumerSecret) {
				t.Errorf("the consumer secret reached the user's server: %s=...", strings.SplitN(line, "=", 2)[0])
			}
		}
		var lti []string
		for k := range vars {
			if strings.HasPrefix(k, "LTI_") {
				lti = append(lti, k+"="+vars[k])
				for _, bad := range []string{"SOURCEDID", "OUTCOME", "OAUTH", "SECRET"} {
					if strings.Contains(k, bad) {
						t.Errorf("%s reached the user's server; the default allow-list has no such field", k)
					}
				}
			}
		}
		t.Logf("LTI_* in alice's server: %v", lti)
		alice := findSession(before, "alice", resourceLinks["alice/hw1"])
		// alice's server was spawned by her first launch (hw1).
		for k, want := range map[string]string{"LTI_CONTEXT_ID": alice.CourseID, "LTI_RESOURCE_LINK_ID": resourceLinks["alice/hw1"]} {
			if got, ok := vars[k]; !ok || got != want {
				t.Errorf("%s = %q (set: %v), want %q", k, got, ok, want)
			}
		}
		if _, ok := vars["LTI_ROLES"]; !ok {
			t.Errorf("LTI_ROLES missing (roles are on the default allow-list)")
		}
	})
	step(t, "6 a score right after a launch lands in that launch's column", func(t *testing.T) {
		// dave's Homework 1 launch is recorded; then he launches Homework 2
		// and a grader scores his hw2 notebook at once, while the hook's
		// recorder is still waiting (about 3 s): the score must see the new
		// launch, not go to Homework 1 or fail.
		f1 := getLaunchForm(t, e.sandbox, "dave", "hw1")
		browsers["dave"].login(t, f1)
		for deadline := time.Now().Add(recordDelay + recordTimeout + loginMargin); len(e.sessions("--user", "dave")) < 1; {
			if time.Now().After(deadline) {
				t.Fatalf("dave's Homework 1 launch was not recorded")
			}
			time.Sleep(100 * time.Millisecond)
		}
		f2 := getLaunchForm(t, e.sandbox, "dave", "hw2")
		browsers["dave"].login(t, f2)
		nb := filepath.Join(e.home("dave"), repoDir, "hw2", "hw2.ipynb")
		out, errOut, code := e.ltigradeCode("score", nb, "0.6")
		if code != 0 {
			t.Fatalf("ltigrade score right after the launch: exit %d\n%s%s", code, out, errOut)
		}
		var hw1, hw2 []map[string]any
		for _, g := range e.grades(t) {
			switch {
			case strings.HasSuffix(gradeSourcedID(g), ":hw1:dave"):
				hw1 = append(hw1, g)
			case strings.HasSuffix(gradeSourcedID(g), ":hw2:dave"):
				hw2 = append(hw2, g)
			}
		}
		if len(hw1) != 0 {
			t.Errorf("dave's Homework 1 got a grade: %v", hw1)
		}
		if len(hw2) != 1 || gradeScore(hw2[0]) != 0.6 {
			t.Fatalf("dave's Homework 2 holds %v, want 0.6", hw2)
		}
	})

	step(t, "7 LTI 1.1: a next edited after signing is refused by ltiauthenticator", func(t *testing.T) {
		// The launch URL's query is part of the OAuth base string, so a
		// student cannot swap Homework 1's next for Homework 2's: the hub
		// itself refuses the launch. This is why LTI 1.1 links count as signed.
		f := getLaunchForm(t, e.sandbox, "dave", "hw1")
		other := getLaunchForm(t, e.sandbox, "dave", "hw2")
		u, err := url.Parse(f.Action)
		if err != nil {
			t.Fatal(err)
		}
		ou, _ := url.Parse(other.Action)
		q := u.Query()
		if q.Get("next") == "" || q.Get("next") == ou.Query().Get("next") {
			t.Fatalf("the sandbox's launch URL carries no distinct next: %s", f.Action)
		}
		q.Set("next", ou.Query().Get("next"))
		u.RawQuery = q.Encode()
		form := url.Values{}
		for k, v := range f.Params {
			form.Set(k, v)
		}
		resp, err := browsers["dave"].noRedir.Post(u.String(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("the hub accepted a launch whose next was edited after signing: %s (Location %q)", resp.Status, resp.Header.Get("Location"))
		}
		t.Logf("edited launch refused: %s", resp.Status)
	})
	t.Logf("whole test took %s", time.Since(start).Round(time.Millisecond))
}

// step runs one numbered step as a subtest and stops the test after the
// first failing one: every step builds on the ones before it.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if t.Failed() {
		t.SkipNow()
	}
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// setup builds ltigrade, makes the course repo, config and secret, installs
// the hook, and starts the sandbox and the hub.
func setup(t *testing.T, env hubEnv) *e2e {
	tmp := t.TempDir()
	e := &e2e{t: t, tmp: tmp}
	e.bin = buildLtigrade(t, filepath.Join(tmp, "bin"))
	e.repoURL = makeCourseRepo(t, filepath.Join(tmp, "git"))

	// TLJH's layout: roots named jupyter-{username}, here under the temp dir.
	e.homeTmpl = filepath.Join(tmp, "home", "jupyter-{username}")
	e.database = filepath.Join(tmp, "var", "ltigrade.db")
	e.spool = filepath.Join(tmp, "var", "spool")
	secretFile := filepath.Join(tmp, "etc", consumerKey+".secret")
	mustMkdir(t, filepath.Dir(secretFile))
	mustWrite(t, secretFile, consumerSecret+"\n", 0o600)
	e.config = filepath.Join(tmp, "etc", "config.toml")
	mustWrite(t, e.config, fmt.Sprintf(`database = %q

[paths]
home = %q

[[lti11.consumers]]
key = %q
secret_file = %q

[hub]
spool_dir = %q
record_timeout = %q

[passback]
timeout = "10s"
`, e.database, e.homeTmpl, consumerKey, secretFile, e.spool, recordTimeout.String()), 0o600)

	// TLJH's jupyterhub_config.d, which hub install expects to exist.
	confd := filepath.Join(tmp, "confd")
	mustMkdir(t, confd)
	out := e.ltigrade("hub", "install", "--config-dir", confd)
	t.Logf("ltigrade hub install: %s", strings.TrimSpace(out))
	subconfig := filepath.Join(confd, "ltigrade.py")
	if _, err := os.Stat(subconfig); err != nil {
		t.Fatalf("ltigrade hub install did not write %s: %v", subconfig, err)
	}

	// The hub first (the sandbox needs its URL), on its own free ports.
	e.hub = startHub(t, env, hubOptions{
		Dir:       filepath.Join(tmp, "hub"),
		HomeTmpl:  e.homeTmpl,
		Consumers: map[string]string{consumerKey: consumerSecret},
		Subconfig: subconfig,
	})

	urlFile := filepath.Join(tmp, "sandbox.url")
	args := []string{"--config", e.config, "sandbox", "--listen", "127.0.0.1:0", "--url-file", urlFile,
		"--hub-url", e.hub.URL, "--course-repo", e.repoURL, "--consumer-key", consumerKey}
	for _, s := range append(students, "carol", "dave") {
		args = append(args, "--student", s)
	}
	for _, a := range assignments {
		args = append(args, "--assignment", a.id+"="+a.path)
	}
	cmd := exec.Command(e.bin, args...)
	cmd.Env = cleanEnv("HOME=" + tmp)
	sandboxLog := filepath.Join(tmp, "sandbox.log")
	sb := startProc(t, "ltigrade sandbox", sandboxLog, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the sandbox's log:\n%s", tail(sandboxLog, 40))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if e.sandbox == "" {
			if b, _ := os.ReadFile(urlFile); len(bytes.TrimSpace(b)) > 0 {
				e.sandbox = strings.TrimRight(string(bytes.TrimSpace(b)), "/")
			}
		}
		var resp *http.Response
		if e.sandbox != "" {
			resp, err = http.Get(e.sandbox + "/grades.json")
		}
		if err == nil && resp != nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if sb.exited() {
			t.Fatalf("ltigrade sandbox exited (%v):\n%s", sb.err, tail(sandboxLog, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("ltigrade sandbox did not answer %s/grades.json within 30s (%v)", e.sandbox, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return e
}

// makeCourseRepo creates a bare git repository holding two assignments and
// returns its file:// URL. Its last path segment is repoDir, nbgitpuller's
// checkout folder.
func makeCourseRepo(t *testing.T, dir string) string {
	work := filepath.Join(dir, "work")
	bare := filepath.Join(dir, repoDir)
	for _, a := range assignments {
		mustMkdir(t, filepath.Join(work, filepath.Dir(a.path)))
		mustWrite(t, filepath.Join(work, a.path), notebook(a.id), 0o644)
	}
	git := func(dir string, args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = cleanEnv("GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.org",
			"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.org", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	git(work, "init", "-q", "-b", "main")
	git(work, "add", ".")
	git(work, "commit", "-q", "-m", "course material")
	git(dir, "clone", "-q", "--bare", work, bare)
	return "file://" + bare
}

// notebook is a minimal valid nbformat 4 notebook.
func notebook(title string) string {
	return `{
 "cells": [
  {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": ["# ` + title + `"]},
  {"cell_type": "code", "execution_count": null, "id": "answer", "metadata": {}, "outputs": [], "source": ["answer = 42"]}
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
`
}

// breakDatabase swaps the database file (and its WAL and shared-memory
// files) for a directory and returns a function that puts them back.
func (e *e2e) breakDatabase(t *testing.T) func() {
	saved := filepath.Join(e.tmp, "var", "saved")
	mustMkdir(t, saved)
	var moved []string
	for _, suffix := range []string{"", "-wal", "-shm"} {
		p := e.database + suffix
		if _, err := os.Stat(p); err == nil {
			if err := os.Rename(p, filepath.Join(saved, filepath.Base(p))); err != nil {
				t.Fatal(err)
			}
			moved = append(moved, p)
		}
	}
	if err := os.Mkdir(e.database, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, code := e.ltigradeCode("sessions", "list"); code == 0 {
		t.Fatalf("ltigrade still works with its database swapped for a directory")
	}
	return func() {
		if err := os.Remove(e.database); err != nil {
			t.Errorf("restore: %v", err)
		}
		for _, p := range moved {
			if err := os.Rename(filepath.Join(saved, filepath.Base(p)), p); err != nil {
				t.Errorf("restore: %v", err)
			}
		}
	}
}

// lockDatabase holds SQLite's write lock on the database and returns a
// function that releases it.
func (e *e2e) lockDatabase(t *testing.T) func() {
	db, err := sql.Open("sqlite3", "file:"+e.database+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("BEGIN EXCLUSIVE"); err != nil {
		db.Close()
		t.Fatalf("lock the database: %v", err)
	}
	return func() {
		if _, err := db.Exec("ROLLBACK"); err != nil {
			t.Errorf("release the database lock: %v", err)
		}
		db.Close()
	}
}

// launchWhileBroken logs user in to assignment while ltigrade cannot record:
// the login must succeed within limit and leave one 0600 file in the spool.
// It returns the spool file and how long the login took.
func (e *e2e) launchWhileBroken(t *testing.T, b *browser, user, assignment string, limit time.Duration) (string, time.Duration) {
	t.Helper()
	spoolBefore := spoolFiles(t, e.spool)
	if len(spoolBefore) != 0 {
		t.Fatalf("the spool is not empty before the launch: %v", spoolBefore)
	}
	f := getLaunchForm(t, e.sandbox, user, assignment)
	_, loc, took := b.login(t, f)
	t.Logf("%s/%s with ltigrade broken: login %s → %s", user, assignment, took.Round(time.Millisecond), loc)
	if took > limit {
		t.Errorf("the login took %s, more than record_timeout %s + %s", took, recordTimeout, loginMargin)
	}
	if !strings.Contains(loc, "git-pull") {
		t.Errorf("the hub redirected to %q, not the launch's nbgitpuller link", loc)
	}
	var files []string
	// The hook may write the spool file just after answering.
	deadline := time.Now().Add(recordTimeout + loginMargin)
	for {
		files = spoolFiles(t, e.spool)
		if len(files) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(files) != 1 {
		t.Fatalf("spool holds %d files after one launch, want 1: %v\nhub log:\n%s", len(files), files, tail(e.hub.Log, 30))
	}
	fi, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("spool file %s has mode %v, want 0600", files[0], fi.Mode().Perm())
	}
	// The hook must say in the hub's log what failed and where the launch
	// stays. It records in the background after the login, so the message
	// comes when ltigrade fails or its record_timeout runs out.
	var said []string
	name := filepath.Base(files[0])
	if strings.HasPrefix(name, ".ingesting-") {
		// claimed by the background record: ".ingesting-<pid>-<random>-<name>"
		if parts := strings.SplitN(name, "-", 4); len(parts) == 4 {
			name = parts[3]
		}
	}
	deadline = time.Now().Add(recordDelay + recordTimeout + loginMargin)
	for len(said) == 0 && time.Now().Before(deadline) {
		if b, err := os.ReadFile(e.hub.Log); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "ltigrade") && strings.Contains(line, name) {
					said = append(said, line)
				}
			}
		}
		if len(said) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(said) == 0 {
		t.Errorf("the hub's log does not name the spooled file %s:\n%s", files[0], tail(e.hub.Log, 20))
	} else {
		t.Logf("hub log: %s", said[0])
	}
	// The background record may have claimed (renamed) the file meanwhile.
	if now := spoolFiles(t, e.spool); len(now) == 1 {
		files = now
	}
	b2, _ := os.ReadFile(files[0])
	if !bytes.Contains(b2, []byte(`"`+user+`"`)) {
		t.Errorf("spool file %s does not name %s:\n%s", files[0], user, b2)
	}
	if bytes.Contains(b2, []byte(consumerSecret)) {
		t.Errorf("spool file %s holds the consumer secret", files[0])
	}
	return files[0], took
}

// syncAndCheck runs `ltigrade sync` and checks it emptied the spool and that
// user now has a session (wantSessions sessions in all).
func (e *e2e) syncAndCheck(t *testing.T, user string, wantSessions int) {
	t.Helper()
	out := e.ltigrade("sync")
	t.Logf("ltigrade sync: %s", strings.TrimSpace(out))
	if files := spoolFiles(t, e.spool); len(files) != 0 {
		t.Errorf("the spool still holds %v after sync", files)
	}
	ss := e.sessions()
	if len(ss) != wantSessions {
		t.Errorf("sessions list shows %d sessions after sync, want %d:\n%s", len(ss), wantSessions, jsonText(ss))
	}
	var found bool
	for _, s := range ss {
		if s.Username == user {
			found = true
			if s.Checkout != repoDir || s.Platform != consumerKey {
				t.Errorf("the spooled launch was recorded as %s", jsonText(s))
			}
		}
	}
	if !found {
		t.Errorf("no session of %s after sync:\n%s", user, jsonText(ss))
	}
}

// spoolFiles lists every regular file under the spool: spooled launches,
// a writer's or ingester's temporary names, and launches set aside in
// failed/ all count.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return filepath.SkipDir
			}
			return err
		}
		if de.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// grades reads the sandbox's /grades.json.
func (e *e2e) grades(t *testing.T) []map[string]any {
	t.Helper()
	resp, err := http.Get(e.sandbox + "/grades.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var gs []map[string]any
	if err := json.Unmarshal(body, &gs); err != nil {
		// Also accept {"grades": [...]}.
		var wrapped struct {
			Grades []map[string]any `json:"grades"`
		}
		if err2 := json.Unmarshal(body, &wrapped); err2 != nil || wrapped.Grades == nil {
			t.Fatalf("/grades.json: %v\n%s", err, body)
		}
		gs = wrapped.Grades
	}
	return gs
}

func gradeSourcedID(g map[string]any) string {
	for _, k := range []string{"sourcedid", "sourced_id", "sourcedId"} {
		if s, ok := g[k].(string); ok {
			return s
		}
	}
	return ""
}

func gradeScore(g map[string]any) float64 {
	switch v := g["score"].(type) {
	case float64:
		return v
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err == nil {
			return f
		}
	}
	return -1
}

// pullLink returns the query of the nbgitpuller link in a launch's next=.
func pullLink(t *testing.T, f launchForm) url.Values {
	t.Helper()
	u, err := url.Parse(f.Action)
	if err != nil {
		t.Fatalf("launch action %q: %v", f.Action, err)
	}
	next := u.Query().Get("next")
	if next == "" {
		next = f.Params["custom_next"]
	}
	path, query, _ := strings.Cut(next, "?")
	if path != "/hub/user-redirect/git-pull" {
		t.Fatalf("launch next=%q is not an nbgitpuller link through /hub/user-redirect", next)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatalf("launch next=%q: %v", next, err)
	}
	return q
}

func findSession(ss []session, user, resourceLink string) *session {
	for i := range ss {
		if ss[i].Username == user && ss[i].ResourceLinkID == resourceLink {
			return &ss[i]
		}
	}
	return nil
}

func jsonText(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, file, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
