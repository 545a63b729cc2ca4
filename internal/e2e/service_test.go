package e2e

// The grading service against the real thing (issue 9): a real JupyterHub 5
// with ltiauthenticator runs `ltigrade serve` as a managed service, put
// there by `ltigrade hub install --service`; students log in by LTI 1.1
// launches from the sandbox LMS; a grader in a hub group scores through the
// service with the remote CLI as a Unix user who can read neither the
// database nor the config; the status page is driven in headless Chromium
// through the hub's own OAuth login; and every answer of the service in the
// whole test is searched for the secrets it must never carry.

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ltigrade/ltigrade/internal/lmssim"
	"github.com/ltigrade/ltigrade/internal/testenv"
)

const (
	svcKey = "svc-course-key"
	// svcSecret is the LTI 1.1 consumer secret: the hub and ltigrade know
	// it, no answer of the service may.
	svcSecret   = "svc-s3cr3t-0xFEEDFACE-never-in-an-answer"
	svcCourse   = "E2E-101"
	svcName     = "ltigrade"
	graderGroup = "instructors"
	graderUser  = "ta"       // a hub user in graderGroup: a grader by [service] graders
	adminUser   = "hubadmin" // a hub admin (c.Authenticator.admin_users)
	adminSvc    = "e2e-admin"
)

// The callers of the authorization matrix.
const (
	anonymous = "anonymous"
	student   = "student" // bob
	grader    = "grader"  // ta, by group
	admin     = "admin"   // hubadmin
	noScope   = "noscope" // bob's token without access:services!service=ltigrade
	forged    = "forged"  // a token the hub never issued
)

var matrixCallers = []string{anonymous, student, grader, admin, noScope, forged}

// svcE2E is the grading service test's world.
type svcE2E struct {
	*e2e
	secretFile, keyFile string
	service             string // http://127.0.0.1:PORT/services/ltigrade/, through the hub's proxy
	prefix              string // /services/ltigrade/
	sandbox             string
	sb                  *lmssim.Sandbox
	lms                 *lmsSwitch
	adminToken          string            // the e2e-admin service's token
	serviceToken        string            // the managed service's own JUPYTERHUB_API_TOKEN
	tokens              map[string]string // matrix caller or hub user → token
	fullNames           map[string]string // student → lis_person_name_full: only in raw auth_state
	rec                 *recorder
	http                *http.Client // records every answer of the service
	browser             *testenv.Driver
	jwks                string // `ltigrade keys jwks` of the config's key
}

// lmsSwitch puts the sandbox's outcome service down (503) or makes it
// refuse grades (400) on the test's say, so scores queue and get rejected
// for real, and come through once it is back.
type lmsSwitch struct {
	mode atomic.Value // "", "down", "reject"
	next http.Handler
}

func (l *lmsSwitch) set(mode string) { l.mode.Store(mode) }

func (l *lmsSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/outcomes" {
		switch l.mode.Load() {
		case "down":
			http.Error(w, "the LMS is down for maintenance", http.StatusServiceUnavailable)
			return
		case "reject":
			http.Error(w, "this grade column is locked", http.StatusBadRequest)
			return
		}
	}
	l.next.ServeHTTP(w, r)
}

func TestGradingServiceEndToEnd(t *testing.T) {
	env := loadHubEnv(t)
	// The whole test's, not a step's: Chromium's sockets live in the
	// driver's temp dir, and a subtest's long name makes that path longer
	// than a Unix socket may be.
	browser := testenv.Browser(t)
	browser.Timeout = time.Minute
	start := time.Now()
	w := setupService(t, env)
	w.browser = browser
	t.Logf("set-up (build, keys, hub with the managed service, sandbox) took %s", time.Since(start).Round(time.Millisecond))
	e := w.e2e

	step(t, "1 the hub runs the service: admin API, group, tokens", func(t *testing.T) {
		// Every hub user is made by an LTI launch: the grader too, then
		// put in the graders' group through the hub's REST API.
		w.launch(t, graderUser, "hw1")
		w.hubAPI(t, "POST", "/hub/api/groups/"+graderGroup, nil, http.StatusCreated)
		w.hubAPI(t, "POST", "/hub/api/groups/"+graderGroup+"/users", map[string]any{"users": []string{graderUser}}, http.StatusOK)
		// The grader's own server, started now so it is up by step 3b:
		// its JUPYTERHUB_API_TOKEN is what the remote CLI uses in there.
		w.hubAPI(t, "POST", "/hub/api/users/"+graderUser+"/server", nil, 0)
		for _, s := range []string{"alice", "bob"} {
			w.launch(t, s, "hw1")
			w.launch(t, s, "hw2")
		}
		for caller, name := range map[string]string{student: "bob", grader: graderUser, admin: adminUser, "alice": "alice"} {
			w.tokens[caller] = w.newToken(t, name, nil)
		}
		w.tokens[noScope] = w.newToken(t, "bob", []string{"read:users:name!user=bob"})
		w.tokens[forged] = randHex(16)
		w.serviceToken = managedServiceToken(t, e.bin)
	})

	step(t, "2 the launches are recorded", func(t *testing.T) {
		ss := w.localSessions(t)
		for deadline := time.Now().Add(recordDelay + recordTimeout + loginMargin); len(ss) < 5 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			ss = w.localSessions(t)
		}
		if len(ss) != 5 {
			t.Fatalf("sessions list --json: %d sessions, want 5 (ta hw1, alice and bob hw1 and hw2):\n%s", len(ss), jsonText(ss))
		}
		// The raw auth_state is in the database (so a leak of it would be
		// possible): the students' full names are only there.
		db := readAll(t, e.database, e.database+"-wal")
		for s, name := range w.fullNames {
			if !bytes.Contains(db, []byte(name)) {
				t.Errorf("the database holds no auth_state with %s's lis_person_name_full; the secret search would miss raw auth_state", s)
			}
		}
	})

	// The account lives as long as the whole test (its cleanups are the
	// test's, not a step's).
	grades := w.unixGrader(t)
	step(t, "3 a grader scores remotely as an unprivileged Unix user, the LMS gets it", func(t *testing.T) {
		t.Run("the account can read neither the database nor the config", func(t *testing.T) {
			if grades == nil {
				t.Skip("SKIPPED: creating a Unix user (useradd) and running as it (setpriv) needs root; the remote CLI runs as the test's own user, from another directory and without the config, instead")
			}
			// What the account cannot read: the point of the service.
			for _, f := range []string{e.config, e.database, w.secretFile, w.keyFile} {
				if _, _, code := w.as(t, grades, "", "/usr/bin/test", "-r", f); code == 0 {
					t.Fatalf("the unprivileged account %s can read %s; the test proves nothing", grades.name, f)
				}
			}
			_, errOut, code := w.as(t, grades, "", e.bin, "--config", e.config, "sessions", "list")
			if code == 0 || !strings.Contains(strings.ToLower(errOut), "permission denied") {
				t.Fatalf("as %s, local `ltigrade sessions list`: exit %d, want a permission error:\n%s", grades.name, code, errOut)
			}
		})
		out, errOut, code := w.as(t, grades, w.tokens[grader], grades.binary(e.bin), "score", "--user", "alice", "materials/hw1/hw1.ipynb", "0.9")
		if code != 0 || !regexp.MustCompile(`^sent 0\.9 for alice \(passback \d+\)`).MatchString(out) {
			t.Fatalf("remote ltigrade score: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		csv := filepath.Join(grades.home(w.tmp), "grades.csv")
		mustWrite(t, csv, "username,notebook,score\nbob,materials/hw1/hw1.ipynb,0.8\n", 0o644)
		grades.own(t, csv)
		out, errOut, code = w.as(t, grades, w.tokens[grader], grades.binary(e.bin), "score", "--batch", "grades.csv", "--json")
		if code != 0 || !strings.Contains(out, `"status": "sent"`) {
			t.Fatalf("remote ltigrade score --batch: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		w.wantGrade(t, "alice", "hw1", "0.9", 1)
		w.wantGrade(t, "bob", "hw1", "0.8", 1)
		if n := len(w.sb.Sim().Grades()); n != 2 {
			t.Errorf("the LMS holds %d grades, want 2: %+v", n, w.sb.Sim().Grades())
		}
		// Nothing of ltigrade's was left on the grader's side.
		var left []string
		filepath.WalkDir(grades.home(w.tmp), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && p != csv {
				left = append(left, p)
			}
			return nil
		})
		if len(left) != 0 {
			t.Errorf("the remote CLI left files in the grader's directory: %v", left)
		}
	})

	step(t, "3b an instructor in their own server: its JUPYTERHUB_API_TOKEN reaches the service", func(t *testing.T) {
		// The single-user server's environment, as the spawner gave it
		// (the test's wrapper dumps it before exec'ing the server).
		dump := filepath.Join(e.home(graderUser), ".e2e-spawn-env")
		var token string
		for deadline := time.Now().Add(60 * time.Second); token == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			b, _ := os.ReadFile(dump)
			lines := strings.Split(string(b), "\n")
			// Whole lines only: the wrapper may be writing the file.
			for _, line := range lines[:len(lines)-1] {
				if v, ok := strings.CutPrefix(line, "JUPYTERHUB_API_TOKEN="); ok {
					token = v
				}
			}
		}
		if token == "" {
			t.Fatalf("%s's server has no JUPYTERHUB_API_TOKEN in %s", graderUser, dump)
		}
		w.tokens[graderUser+"'s server"] = token
		env := []string{"JUPYTERHUB_API_TOKEN=" + token}
		out, errOut, code := w.remoteEnv(t, env, "sessions", "list", "--json")
		if code != 0 {
			t.Fatalf("remote sessions list with the server's token: exit %d\n%s%s", code, out, errOut)
		}
		if !strings.Contains(out, `"username": "alice"`) || !strings.Contains(out, `"username": "bob"`) {
			t.Errorf("the grader's server token does not see everyone's sessions:\n%s", out)
		}
		out, errOut, code = w.remoteEnv(t, env, "score", "--dry-run", "--user", "alice", "materials/hw1/hw1.ipynb", "0.95")
		if code != 0 {
			t.Fatalf("remote score --dry-run with the server's token: exit %d\n%s%s", code, out, errOut)
		}
	})

	step(t, "4 a student's token may not score (exit 7) and sees only their own sessions", func(t *testing.T) {
		_, errOut, code := w.as(t, grades, w.tokens[student], grades.binary(e.bin), "score", "--user", "bob", "materials/hw2/hw2.ipynb", "1")
		if code != 7 || !strings.Contains(errOut, `user "bob" may not score`) {
			t.Fatalf("bob scoring himself: exit %d, want 7\n%s", code, errOut)
		}
		_, errOut, code = w.as(t, grades, w.tokens[student], grades.binary(e.bin), "score", "--user", "alice", "materials/hw2/hw2.ipynb", "0.1")
		if code != 7 {
			t.Fatalf("bob scoring alice: exit %d, want 7\n%s", code, errOut)
		}
		out, errOut, code := w.as(t, grades, w.tokens[student], grades.binary(e.bin), "sessions", "list", "--json")
		if code != 0 {
			t.Fatalf("bob's sessions list: exit %d\n%s", code, errOut)
		}
		var ss []session
		if err := json.Unmarshal([]byte(out), &ss); err != nil {
			t.Fatalf("sessions list --json: %v\n%s", err, out)
		}
		if len(ss) != 2 {
			t.Errorf("bob sees %d sessions, want his 2:\n%s", len(ss), out)
		}
		for _, s := range ss {
			if s.Username != "bob" {
				t.Errorf("bob sees %s's session %d", s.Username, s.ID)
			}
		}
		_, _, code = w.as(t, grades, w.tokens[student], grades.binary(e.bin), "sessions", "list", "--user", "alice")
		if code != 7 {
			t.Errorf("bob asking for alice's sessions: exit %d, want 7", code)
		}
		if n := len(w.sb.Sim().Grades()); n != 2 {
			t.Errorf("the LMS holds %d grades after the refused scores, want 2", n)
		}
	})

	step(t, "5 authorization matrix on the real hub", func(t *testing.T) {
		w.matrix(t)
	})

	var retryID int64
	step(t, "6a a rejected and a queued score", func(t *testing.T) {
		w.lms.set("reject")
		out, errOut, code := w.remote(t, w.tokens[grader], "score", "--user", "alice", "materials/hw2/hw2.ipynb", "0.4")
		if code != 6 {
			t.Fatalf("score while the LMS refuses: exit %d, want 6\n%s%s", code, out, errOut)
		}
		w.lms.set("down")
		out, errOut, code = w.remote(t, w.tokens[grader], "score", "--json", "--user", "bob", "materials/hw2/hw2.ipynb", "0.7")
		if code != 5 {
			t.Fatalf("score while the LMS is down: exit %d, want 5\n%s%s", code, out, errOut)
		}
		var res struct {
			Passback struct {
				ID     int64  `json:"id"`
				Status string `json:"status"`
			} `json:"passback"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Passback.ID == 0 {
			t.Fatalf("score --json: %v\n%s", err, out)
		}
		retryID = res.Passback.ID
		t.Logf("bob's hw2 score is passback %d, %s", retryID, res.Passback.Status)
		// The newest passback is a sent one, so a page that listed the
		// journal as it comes (newest first) would not pass for sorted.
		w.lms.set("")
		if out, errOut, code := w.remote(t, w.tokens[grader], "score", "--user", graderUser, "materials/hw1/hw1.ipynb", "0.5"); code != 0 {
			t.Fatalf("score with the LMS up: exit %d\n%s%s", code, out, errOut)
		}
		w.lms.set("down")
	})

	step(t, "6b the student's status page in Chromium: own launches, delivered or not", func(t *testing.T) {
		res := w.browse(t, "bob",
			wait("#mine"), text("#user"), text("#mine"), text("body"), shot("student-status"))
		if res.Texts[0] != "bob" {
			t.Errorf("signed in as %q, want bob", res.Texts[0])
		}
		rows := tableRows(res.Texts[1])
		if len(rows) != 3 { // header + hw1 + hw2
			t.Fatalf("bob's table has %d rows, want a header and 2:\n%s", len(rows), res.Texts[1])
		}
		byAssignment := map[string][]string{}
		for _, r := range rows[1:] {
			if len(r) < 6 {
				t.Fatalf("row %q: want 6 cells", r)
			}
			byAssignment[r[1]] = r
		}
		if r := byAssignment["Homework 1"]; r == nil || r[4] != "0.8" || !strings.HasPrefix(r[5], "delivered") {
			t.Errorf("Homework 1 row %q, want score 0.8 delivered", r)
		}
		if r := byAssignment["Homework 2"]; r == nil || r[4] != "0.7" || r[5] != "waiting to be delivered" {
			t.Errorf("Homework 2 row %q, want score 0.7 waiting to be delivered", r)
		}
		for _, bad := range []string{"alice", "Retry", "Passbacks", "Sessions by course"} {
			if strings.Contains(res.Texts[2], bad) {
				t.Errorf("bob's page shows %q:\n%s", bad, res.Texts[2])
			}
		}
	})

	step(t, "6c the grader's status page in Chromium: rejected and queued first, retry while the LMS is down", func(t *testing.T) {
		res := w.browse(t, graderUser,
			wait("#passbacks"), text("#user"), text("#passbacks"), text("body"), shot("grader-status"),
			click(fmt.Sprintf("#retry-%d", retryID)), wait("#message"), text("#message"), text("#passbacks"),
			shot("grader-retry-lms-down"))
		if res.Texts[0] != graderUser {
			t.Errorf("signed in as %q, want %s", res.Texts[0], graderUser)
		}
		statuses := column(t, res.Texts[1], "Status")
		users := column(t, res.Texts[1], "User")
		if want := []string{"rejected", "retry", "sent", "sent", "sent"}; !slices.Equal(statuses, want) {
			t.Errorf("passback statuses top to bottom %v, want %v:\n%s", statuses, want, res.Texts[1])
		}
		if want := []string{"alice", "bob"}; len(users) < 2 || !slices.Equal(users[:2], want) {
			t.Errorf("rejected and queued rows are %v's, want %v", users, want)
		}
		body := res.Texts[2]
		for _, want := range []string{"Sessions by course and assignment", svcCourse, "Homework 1", "Homework 2", "alice", "bob", graderUser} {
			if !strings.Contains(body, want) {
				t.Errorf("the grader's page lacks %q:\n%s", want, body)
			}
		}
		if got := strings.Count(body, "Retry"); got != 1 {
			t.Errorf("%d Retry buttons, want 1 (the queued score only)", got)
		}
		msg := res.Texts[3]
		if !strings.HasPrefix(msg, fmt.Sprintf("passback %d: retry", retryID)) {
			t.Errorf("after a retry with the LMS down the page says %q, want passback %d still queued", msg, retryID)
		}
		if len(w.gradesOf("bob", "hw2")) != 0 {
			t.Errorf("the LMS got bob's hw2 while it was down")
		}
	})

	step(t, "6d the LMS is back: the retry button delivers it and the page says sent", func(t *testing.T) {
		w.lms.set("")
		res := w.browse(t, graderUser,
			wait(fmt.Sprintf("#retry-%d", retryID)), click(fmt.Sprintf("#retry-%d", retryID)), wait("#message"),
			text("#message"), text("#passbacks"), shot("grader-retry-sent"))
		if want := fmt.Sprintf("passback %d: sent", retryID); res.Texts[0] != want {
			t.Errorf("after the retry the page says %q, want %q", res.Texts[0], want)
		}
		if statuses := column(t, res.Texts[1], "Status"); !slices.Equal(statuses, []string{"rejected", "sent", "sent", "sent", "sent"}) {
			t.Errorf("passback statuses after the retry %v, want rejected then sent", statuses)
		}
		w.wantGrade(t, "bob", "hw2", "0.7", 1)
		// And the student sees it delivered (the same page, by token).
		page := w.get(t, w.tokens[student], "GET", "", "")
		if !strings.Contains(string(page.body), "0.7") || strings.Contains(string(page.body), "waiting to be delivered") {
			t.Errorf("bob's page after the retry still shows a grade waiting:\n%s", page.body)
		}
	})

	step(t, "6e GET metrics through the hub's proxy: the figures follow from the scores above", func(t *testing.T) {
		w.scrapeMetrics(t)
	})

	step(t, "7 no answer of the test carried a secret, key material, a token or raw auth_state", func(t *testing.T) {
		w.searchSecrets(t)
	})
	t.Logf("whole test took %s", time.Since(start).Round(time.Millisecond))
}

// setupService builds ltigrade, writes its config (an LTI 1.1 consumer, an
// LTI 1.3 key for the JWKS, [service] graders), installs the hook and the
// service with `ltigrade hub install --service`, and starts the hub and the
// sandbox LMS. extraConfig is appended to the config file (more tables:
// submit_test.go's [submit] and [[graders]]).
func setupService(t *testing.T, env hubEnv, extraConfig ...string) *svcE2E {
	tmp := t.TempDir()
	w := &svcE2E{e2e: &e2e{t: t, tmp: tmp}, tokens: map[string]string{}, fullNames: map[string]string{}, rec: &recorder{},
		prefix: "/services/" + svcName + "/"}
	e := w.e2e
	e.bin = buildLtigrade(t, filepath.Join(tmp, "bin"))
	e.homeTmpl = filepath.Join(tmp, "home", "jupyter-{username}")
	e.database = filepath.Join(tmp, "var", "ltigrade.db")
	e.spool = filepath.Join(tmp, "var", "spool")
	w.secretFile = filepath.Join(tmp, "etc", svcKey+".secret")
	w.keyFile = filepath.Join(tmp, "etc", "lti13.pem")
	mustMkdir(t, filepath.Dir(w.secretFile))
	mustWrite(t, w.secretFile, svcSecret+"\n", 0o600)
	e.config = filepath.Join(tmp, "etc", "config.toml")
	mustWrite(t, e.config, fmt.Sprintf(`database = %q

[paths]
home = %q

[[lti11.consumers]]
key = %q
secret_file = %q

# Only for the service's JWKS (and so its private key is there to leak).
[[lti13.platforms]]
issuer = "https://lms.example.edu"
client_id = "e2e-client"
token_url = "http://127.0.0.1:9/token"
private_key_file = %q

[hub]
spool_dir = %q
record_timeout = %q

[passback]
timeout = "10s"

[service]
graders = ["group:%s"]
`, e.database, e.homeTmpl, svcKey, w.secretFile, w.keyFile, e.spool, recordTimeout.String(), graderGroup)+strings.Join(extraConfig, "\n"), 0o600)
	e.ltigrade("keys", "generate", "--out", w.keyFile)
	w.jwks = e.ltigrade("keys", "jwks", "--key", w.keyFile)

	confd := filepath.Join(tmp, "confd")
	mustMkdir(t, confd)
	servicePort := freePorts(t, 1)[0]
	out := e.ltigrade("hub", "install", "--config-dir", confd, "--service", "--service-url", fmt.Sprintf("http://127.0.0.1:%d", servicePort))
	t.Logf("ltigrade hub install --service: %s", strings.TrimSpace(out))

	// The sandbox's address first: its launches name its outcome service.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.sandbox = "http://" + ln.Addr().String()

	// What the site configured before ltigrade's snippet, which must keep
	// it: an admin service for the test (its token drives the REST API),
	// and the 'user' role, which the snippet extends (as it defines the
	// 'server' role, JupyterHub's default here).
	w.adminToken = randHex(32)
	e.hub = startHub(t, env, hubOptions{
		Dir:       filepath.Join(tmp, "hub"),
		HomeTmpl:  e.homeTmpl,
		Consumers: map[string]string{svcKey: svcSecret},
		Subconfig: filepath.Join(confd, "ltigrade.py"),
		Before: fmt.Sprintf(`c.Authenticator.admin_users = {%s}
c.JupyterHub.services = [{"name": %s, "api_token": %s}]
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self"]},
    {"name": %s, "scopes": ["admin:users", "admin:groups", "admin:servers", "tokens"], "services": [%s]},
]
`, py(adminUser), py(adminSvc), py(w.adminToken), py(adminSvc), py(adminSvc)),
		// A launch's nbgitpuller link (/hub/user-redirect/git-pull) would
		// spawn the user's server, which nobody here needs: the hub sends
		// it to its home page instead, by its own hook for that.
		// And the API's spawn answers at once (202) instead of waiting up to
		// 10 s for the server.
		Extra: "c.JupyterHub.user_redirect_hook = lambda path, request, user, base_url: base_url + \"hub/home\"\n" +
			"c.JupyterHub.tornado_settings = {\"slow_spawn_timeout\": 0}\n",
	})
	w.service = e.hub.URL + w.prefix
	w.http = &http.Client{Timeout: 60 * time.Second, Transport: recordingTransport{base: http.DefaultTransport, rec: w.rec, prefix: w.prefix},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	students := []lmssim.Student{}
	for _, s := range []string{"alice", "bob", graderUser} {
		w.fullNames[s] = strings.ToUpper(s[:1]) + s[1:] + " Authstate-" + randHex(6)
		students = append(students, lmssim.Student{Name: s, FullName: w.fullNames[s]})
	}
	sb, err := lmssim.NewSandbox(lmssim.LaunchBuilder{HubURL: e.hub.URL, Key: svcKey, Secret: svcSecret, Course: lmssim.Course{
		ID: svcCourse, Label: svcCourse, Title: "Grading service course", Repo: "file:///srv/git/" + repoDir,
		Students: students,
		Assignments: []lmssim.Assignment{
			{ID: "hw1", Title: "Homework 1", Path: "hw1/hw1.ipynb"},
			{ID: "hw2", Title: "Homework 2", Path: "hw2/hw2.ipynb"},
		},
	}}, w.sandbox)
	if err != nil {
		t.Fatal(err)
	}
	w.sb = sb
	w.lms = &lmsSwitch{next: sb.Handler()}
	srv := &http.Server{Handler: w.lms, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { sb.Close(); srv.Close() })

	// The hub starts its managed services with itself; wait for ours
	// through the proxy.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(w.service + "healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the managed service did not answer %shealthz within 30s (%v):\n%s", w.service, err, tail(e.hub.Log, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return w
}

// localSessions is `ltigrade sessions list --json` on the hub's side (as
// root, with the config), failing t (a step's) rather than the test.
func (w *svcE2E) localSessions(t *testing.T) []session {
	t.Helper()
	cmd := exec.Command(w.bin, "--config", w.config, "sessions", "list", "--json")
	cmd.Env = cleanEnv("HOME=" + w.tmp)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ltigrade sessions list --json: %v", err)
	}
	var ss []session
	if err := json.Unmarshal(out, &ss); err != nil {
		t.Fatalf("sessions list --json: %v\n%s", err, out)
	}
	return ss
}

// launch logs a student into the hub with a signed launch from the sandbox.
func (w *svcE2E) launch(t *testing.T, student, assignment string) {
	t.Helper()
	f := getLaunchForm(t, w.sandbox, student, assignment)
	w.rec.launches = append(w.rec.launches, f)
	if _, loc, _ := newBrowser(t, student).login(t, f); !strings.Contains(loc, "git-pull") {
		t.Fatalf("%s/%s: the hub redirected to %q, not the launch's nbgitpuller link", student, assignment, loc)
	}
}

// hubAPI calls the hub's REST API with the admin service's token; want 0
// takes any 2xx.
func (w *svcE2E) hubAPI(t *testing.T, method, path string, body any, want int) []byte {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.hub.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "token "+w.adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want && (want != 0 || resp.StatusCode/100 != 2) {
		t.Fatalf("%s %s: %s, want %d\n%s", method, path, resp.Status, want, short(b))
	}
	if !strings.HasSuffix(path, "/tokens") { // those hold the new token: controls, see newToken
		var h strings.Builder
		resp.Header.Write(&h)
		w.rec.add("the hub's answer to "+method+" "+path, resp.Status+"\n"+h.String()+string(b))
	}
	return b
}

// newToken makes a hub API token for a user (all the user's permissions,
// or just scopes).
func (w *svcE2E) newToken(t *testing.T, name string, scopes []string) string {
	t.Helper()
	body := map[string]any{"note": "ltigrade e2e", "expires_in": 3600}
	if scopes != nil {
		body["scopes"] = scopes
	}
	b := w.hubAPI(t, "POST", "/hub/api/users/"+name+"/tokens", body, http.StatusCreated)
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.Token == "" {
		t.Fatalf("token for %s: %v\n%s", name, err, short(b))
	}
	// The hub's answer holds the token: the secret search must find it
	// there, or it finds nothing anywhere.
	w.rec.control("the hub's answer creating a token for "+name, string(b), tok.Token)
	return tok.Token
}

// managedServiceToken reads the JUPYTERHUB_API_TOKEN the hub gave the
// managed `ltigrade serve` (the service's own hub credential and its OAuth
// client secret) from its environment.
func managedServiceToken(t *testing.T, bin string) string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) < 2 || args[0] != bin || args[len(args)-1] != "serve" {
			continue
		}
		environ, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "environ"))
		if err != nil {
			t.Fatalf("the managed service's environment: %v", err)
		}
		for _, kv := range strings.Split(string(environ), "\x00") {
			if v, ok := strings.CutPrefix(kv, "JUPYTERHUB_API_TOKEN="); ok && v != "" {
				return v
			}
		}
		t.Fatalf("the managed service (pid %s) has no JUPYTERHUB_API_TOKEN", ent.Name())
	}
	t.Fatalf("no running `%s ... serve` process: the hub did not start the managed service", bin)
	return ""
}

// unixUser is a temporary system account for the remote grader: it owns
// a directory under a 0755 folder outside the test's (0700) temp dir, with
// a copy of the binary it can run.
type unixUser struct {
	name     string
	uid, gid int
	dir      string // the 0755 folder: bin/ltigrade and home/
}

// binary is the ltigrade the account runs: its copy, or the test's own
// binary when there is no account.
func (u *unixUser) binary(bin string) string {
	if u == nil {
		return bin
	}
	return filepath.Join(u.dir, "bin", "ltigrade")
}

// home is the grader's working directory.
func (u *unixUser) home(tmp string) string {
	if u == nil {
		return filepath.Join(tmp, "grader-home")
	}
	return filepath.Join(u.dir, "home")
}

func (u *unixUser) own(t *testing.T, file string) {
	if u != nil {
		if err := os.Chown(file, u.uid, u.gid); err != nil {
			t.Fatal(err)
		}
	}
}

// unixGrader creates the account, or returns nil (and says why) when the
// test does not run as root: the remote CLI then runs as the test's user,
// from another directory, without the config.
func (w *svcE2E) unixGrader(t *testing.T) *unixUser {
	t.Helper()
	if os.Geteuid() != 0 {
		mustMkdir(t, filepath.Join(w.tmp, "grader-home"))
		return nil
	}
	for _, tool := range []string{"useradd", "userdel", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the remote grader as an unprivileged user: %v", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "ltigrade-e2e-grader-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	u := &unixUser{name: "ltge2e-" + randHex(4), dir: dir}
	home := u.home("")
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", home, "--shell", "/usr/sbin/nologin",
		"--user-group", u.name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", u.name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", u.name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", u.name, err, out)
		}
		// userdel removes the user's own group where USERGROUPS_ENAB is
		// set; elsewhere it stays behind.
		if _, err := user.LookupGroup(u.name); err == nil {
			exec.Command("groupdel", u.name).Run()
		}
	})
	pw, err := user.Lookup(u.name)
	if err != nil {
		t.Fatal(err)
	}
	u.uid, _ = strconv.Atoi(pw.Uid)
	u.gid, _ = strconv.Atoi(pw.Gid)
	mustMkdir(t, filepath.Join(dir, "bin"))
	b, err := os.ReadFile(w.bin)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, u.binary(""), string(b), 0o755)
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	u.own(t, home)
	t.Logf("grading as the unprivileged account %s (uid %d) from %s", u.name, u.uid, home)
	return u
}

// as runs a command as the grader account (setpriv), in its home, with
// only HOME, PATH and the service's URL and token (if token != "") in its
// environment: no config, no database, no secret.
func (w *svcE2E) as(t *testing.T, u *unixUser, token string, args ...string) (string, string, int) {
	t.Helper()
	env := []string{"HOME=" + u.home(w.tmp), "PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	if token != "" {
		env = append(env, "LTIGRADE_URL="+w.service, "LTIGRADE_TOKEN="+token)
	}
	var cmd *exec.Cmd
	if u == nil {
		cmd = exec.Command(args[0], args[1:]...)
		cmd.Env = env
	} else {
		cmd = exec.Command("setpriv", append([]string{"--reuid", strconv.Itoa(u.uid), "--regid", strconv.Itoa(u.gid), "--init-groups",
			"--", "/usr/bin/env", "-i"}, append(env, args...)...)...)
	}
	cmd.Dir = u.home(w.tmp)
	return w.run(t, cmd, strings.Join(args, " "))
}

// remote runs the remote CLI as the test's user from another directory.
func (w *svcE2E) remote(t *testing.T, token string, args ...string) (string, string, int) {
	t.Helper()
	return w.remoteEnv(t, []string{"LTIGRADE_TOKEN=" + token}, args...)
}

// remoteEnv is remote with the token in env (LTIGRADE_TOKEN or
// JUPYTERHUB_API_TOKEN).
func (w *svcE2E) remoteEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	dir := filepath.Join(w.tmp, "remote")
	mustMkdir(t, dir)
	cmd := exec.Command(w.bin, args...)
	cmd.Env = cleanEnv(append([]string{"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"), "LTIGRADE_URL=" + w.service}, env...)...)
	cmd.Dir = dir
	return w.run(t, cmd, "ltigrade "+strings.Join(args, " "))
}

func (w *svcE2E) run(t *testing.T, cmd *exec.Cmd, what string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s: %v", what, err)
		}
		code = ee.ExitCode()
	}
	w.rec.add("output of "+what, stdout.String()+"\n"+stderr.String())
	return stdout.String(), stderr.String(), code
}

func (w *svcE2E) gradesOf(student, assignment string) []lmssim.Grade {
	var out []lmssim.Grade
	for _, g := range w.sb.Sim().Grades() {
		if s, a, ok := w.sb.Who(g.SourcedID); ok && s == student && a == assignment {
			out = append(out, g)
		}
	}
	return out
}

func (w *svcE2E) wantGrade(t *testing.T, student, assignment, score string, writes int) {
	t.Helper()
	got := w.gradesOf(student, assignment)
	if len(got) != 1 || got[0].Score != score || got[0].Writes != writes {
		t.Errorf("the LMS holds %+v for %s's %s, want %s written %d time(s)", got, student, assignment, score, writes)
	}
}

// reply is one answer of the service.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// get calls the service (path relative to its prefix) as a caller's token
// ("" anonymous); every answer is recorded for the secret search.
func (w *svcE2E) get(t *testing.T, token, method, path, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.service+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	if body != "" {
		ct := "application/json"
		if !strings.HasPrefix(body, "{") {
			ct = "application/x-www-form-urlencoded"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

// endpoint is one row of the matrix: what each caller must get.
type endpoint struct {
	method, path, body string
	want               map[string]int
	// check looks at a 200 answer's body for the caller.
	check func(t *testing.T, caller string, body []byte)
}

// wants spells a row's statuses in matrixCallers' order.
func wants(codes ...int) map[string]int {
	if len(codes) != len(matrixCallers) {
		panic("wants: one status per caller")
	}
	m := map[string]int{}
	for i, c := range matrixCallers {
		m[c] = codes[i]
	}
	return m
}

// matrix: anonymous / student / grader / admin (and a token without the
// service's scope, and a forged one) × every endpoint of the service.
func (w *svcE2E) matrix(t *testing.T) {
	const (
		ok   = http.StatusOK
		no   = http.StatusUnauthorized
		deny = http.StatusForbidden
		bad  = http.StatusBadRequest
		back = http.StatusFound // a page sends a browser through the hub's OAuth login
	)
	sees := func(want ...string) func(*testing.T, string, []byte) {
		return func(t *testing.T, caller string, body []byte) {
			for _, s := range want {
				if !bytes.Contains(body, []byte(s)) {
					t.Errorf("%s: the answer lacks %q:\n%s", caller, s, short(body))
				}
			}
		}
	}
	onlyUsers := func(path string) func(*testing.T, string, []byte) {
		return func(t *testing.T, caller string, body []byte) {
			var rows []struct {
				Username string `json:"username"`
			}
			if err := json.Unmarshal(body, &rows); err != nil {
				t.Fatalf("%s %s: %v\n%s", caller, path, err, short(body))
			}
			users := map[string]bool{}
			for _, r := range rows {
				users[r.Username] = true
			}
			switch caller {
			case student:
				if len(users) != 1 || !users["bob"] {
					t.Errorf("student %s: users %v, want bob's rows only", path, users)
				}
			default:
				if !users["alice"] || !users["bob"] {
					t.Errorf("%s %s: users %v, want everyone's", caller, path, users)
				}
			}
		}
	}
	health := func(t *testing.T, caller string, body []byte) {
		var h struct{ User, Role string }
		json.Unmarshal(body, &h)
		want := map[string][2]string{student: {"bob", "student"}, grader: {graderUser, "grader"}, admin: {adminUser, "admin"}}[caller]
		if h.User != want[0] || h.Role != want[1] {
			t.Errorf("%s api/health: user %q role %q, want %q %q", caller, h.User, h.Role, want[0], want[1])
		}
	}
	page := func(t *testing.T, caller string, body []byte) {
		s := string(body)
		if caller == student {
			if !strings.Contains(s, "My assignments") || strings.Contains(s, "alice") || strings.Contains(s, `id="passbacks"`) {
				t.Errorf("the student's status page shows more than his own:\n%s", s)
			}
			return
		}
		for _, want := range []string{`id="passbacks"`, "alice", "bob", "Sessions by course and assignment"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s's status page lacks %q", caller, want)
			}
		}
	}
	dryRun := func(user string) string {
		return fmt.Sprintf(`{"user": %q, "notebook": "materials/hw1/hw1.ipynb", "score": "0.5", "dry_run": true}`, user)
	}
	rows := []endpoint{
		{"GET", "api/health", "", wants(no, ok, ok, ok, deny, no), health},
		{"GET", "api/sessions", "", wants(no, ok, ok, ok, deny, no), onlyUsers("api/sessions")},
		{"GET", "api/sessions?user=alice", "", wants(no, deny, ok, ok, deny, no), nil},
		{"GET", "api/resolve?notebook=materials/hw1/hw1.ipynb&user=alice", "", wants(no, deny, ok, ok, deny, no), sees(`"username": "alice"`)},
		{"GET", "api/resolve?notebook=materials/hw1/hw1.ipynb&user=bob", "", wants(no, ok, ok, ok, deny, no), sees(`"username": "bob"`)},
		{"POST", "api/scores", dryRun("alice"), wants(no, deny, ok, ok, deny, no), sees(`"dry_run": true`)},
		{"POST", "api/scores", dryRun("bob"), wants(no, deny, ok, ok, deny, no), sees(`"dry_run": true`)},
		{"POST", "api/scores", `{"rows": [{"line": 2, "username": "bob", "notebook": "materials/hw1/hw1.ipynb", "score": "0.3"}], "dry_run": true}`,
			wants(no, deny, ok, ok, deny, no), nil},
		{"GET", "api/passbacks", "", wants(no, ok, ok, ok, deny, no), onlyUsers("api/passbacks")},
		{"GET", "api/passbacks?user=alice", "", wants(no, deny, ok, ok, deny, no), nil},
		{"POST", "api/sync", "", wants(no, deny, ok, ok, deny, no), sees(`"still_queued": 0`)},
		{"GET", ".well-known/jwks.json", "", wants(ok, ok, ok, ok, ok, ok), w.checkJWKS},
		{"GET", "healthz", "", wants(ok, ok, ok, ok, ok, ok), nil},
		{"GET", "metrics", "", wants(no, deny, ok, ok, deny, no), sees(`ltigrade_passbacks{status="sent"}`, "go_goroutines")},
		{"GET", "", "", wants(back, ok, ok, ok, deny, back), page},
		{"POST", "retry", "id=", wants(no, deny, bad, bad, deny, no), nil},
		{"GET", "oauth_callback?code=x&state=y", "", wants(bad, bad, bad, bad, bad, bad), nil},
		{"GET", "logout", "", wants(ok, ok, ok, ok, ok, ok), sees("logged out")},
		{"GET", "api/no-such-thing", "", wants(http.StatusNotFound, http.StatusNotFound, http.StatusNotFound, http.StatusNotFound, http.StatusNotFound, http.StatusNotFound), nil},
	}
	before := len(w.sb.Sim().Grades())
	for _, ep := range rows {
		for _, caller := range matrixCallers {
			r := w.get(t, w.tokens[caller], ep.method, ep.path, ep.body)
			name := fmt.Sprintf("%s %s %s as %s", ep.method, w.prefix+ep.path, short([]byte(ep.body)), caller)
			if r.status != ep.want[caller] {
				t.Errorf("%s: %d, want %d\n%s", name, r.status, ep.want[caller], short(r.body))
				continue
			}
			if (r.status == no || r.status == deny) && strings.HasPrefix(ep.path, "api/") && r.header.Get("Ltigrade-Exit-Code") != "7" {
				t.Errorf("%s: exit code header %q, want 7 (not allowed)", name, r.header.Get("Ltigrade-Exit-Code"))
			}
			if r.status == back && !strings.HasPrefix(r.header.Get("Location"), "/hub/api/oauth2/authorize?") {
				t.Errorf("%s: redirected to %q, want the hub's OAuth authorize", name, r.header.Get("Location"))
			}
			if r.status == ok && ep.check != nil {
				ep.check(t, caller, r.body)
			}
		}
	}
	if after := len(w.sb.Sim().Grades()); after != before {
		t.Errorf("the matrix (dry runs only) changed the LMS's grades: %d → %d", before, after)
	}
}

// scrapeMetrics reads GET metrics as the grader, through the hub's proxy,
// parses it with an independent parser, and checks it against the outbox
// as the local CLI lists it: counts by status, and the sends this service
// made (every attempt of every row was the service's: all scores went
// through it) by outcome, all to the sandbox LMS's host.
func (w *svcE2E) scrapeMetrics(t *testing.T) {
	r := w.get(t, w.tokens[grader], "GET", "metrics", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET metrics as the grader: %d\n%s", r.status, short(r.body))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, short(r.body))
	}
	sample := func(name string, labels map[string]string) (float64, bool) {
		f := fams[name]
		if f == nil {
			return 0, false
		}
	next:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue(), true
			}
			return m.Gauge.GetValue(), true
		}
		return 0, false
	}
	var rows []struct {
		Status   string `json:"status"`
		Attempts int    `json:"attempts"`
	}
	if err := json.Unmarshal([]byte(w.e2e.ltigrade("passbacks", "list", "--json")), &rows); err != nil || len(rows) == 0 {
		t.Fatalf("passbacks list --json: %v", err)
	}
	byStatus := map[string]float64{}
	attempts := 0.0
	for _, row := range rows {
		byStatus[row.Status]++
		attempts += float64(row.Attempts)
	}
	for _, st := range []string{"pending", "sending", "sent", "retry", "rejected", "superseded"} {
		if v, ok := sample("ltigrade_passbacks", map[string]string{"status": st}); !ok || v != byStatus[st] {
			t.Errorf("ltigrade_passbacks{status=%q} = %v (present %v), the outbox holds %v", st, v, ok, byStatus[st])
		}
	}
	host := strings.TrimPrefix(w.sandbox, "http://")
	sent, _ := sample("ltigrade_sends_total", map[string]string{"outcome": "sent", "host": host})
	rejected, _ := sample("ltigrade_sends_total", map[string]string{"outcome": "rejected", "host": host})
	retry, _ := sample("ltigrade_sends_total", map[string]string{"outcome": "retry", "host": host})
	if sent != byStatus["sent"] || rejected != byStatus["rejected"] || sent+rejected+retry != attempts || retry < 1 {
		t.Errorf("sends to %s: sent %v rejected %v retry %v; the outbox has %v sent, %v rejected, %v attempts in all",
			host, sent, rejected, retry, byStatus["sent"], byStatus["rejected"], attempts)
	}
	if v, ok := sample("ltigrade_queue_oldest_age_seconds", nil); !ok || v != 0 {
		t.Errorf("queue oldest age %v (present %v), want 0: nothing is owed", v, ok)
	}
	// The matrix's POST api/sync ran as the grader and the admin.
	if v, ok := sample("ltigrade_last_sync_timestamp_seconds", nil); !ok || v <= 0 || v > float64(time.Now().Unix()+1) {
		t.Errorf("last sync %v (present %v), want the matrix's sync", v, ok)
	}
	// User names as label values (quoted: "ta" is in every "status"),
	// and no course or LMS path anywhere.
	for _, bad := range []string{`"alice"`, `"bob"`, `"` + graderUser + `"`, svcCourse, "/outcome", "alice", "bob"} {
		if bytes.Contains(r.body, []byte(bad)) {
			t.Errorf("the metrics carry %s", bad)
		}
	}
}

// checkJWKS: the public key of the configured platform key, and nothing
// private.
func (w *svcE2E) checkJWKS(t *testing.T, caller string, body []byte) {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("%s jwks: %v, %d keys\n%s", caller, err, len(set.Keys), short(body))
	}
	for _, k := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := set.Keys[0][k]; ok {
			t.Errorf("%s jwks: the key has the private member %q", caller, k)
		}
	}
	var local struct {
		Keys []map[string]any `json:"keys"`
	}
	json.Unmarshal([]byte(w.jwks), &local)
	if len(local.Keys) != 1 || local.Keys[0]["kid"] != set.Keys[0]["kid"] || local.Keys[0]["n"] != set.Keys[0]["n"] {
		t.Errorf("%s jwks: %v, want the config's key %v", caller, set.Keys[0]["kid"], local.Keys)
	}
}

// browse logs a hub user in in a fresh Chromium by their own LTI launch
// from the sandbox's page (it submits itself to the hub, whose answer sets
// the hub's login cookie and sends the browser on to the hub's home page),
// opens the status page,
// which sends the browser through the hub's OAuth authorize and back to
// the service's callback, then runs steps.
func (w *svcE2E) browse(t *testing.T, name string, steps ...map[string]any) *browsed {
	t.Helper()
	d := w.browser
	all := append([]map[string]any{
		{"open": w.sandbox + "/launch?" + url.Values{"student": {name}, "assignment": {"hw1"}}.Encode()},
		{"waitURL": "/hub/home"},
		{"goto": w.service},
	}, steps...)
	out, err := d.RunScript(filepath.Join("testdata", "record.mjs"), map[string]any{"steps": all, "timeoutMs": 20000, "capture": w.prefix})
	var res browsed
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	if jerr := json.Unmarshal(lines[len(lines)-1], &res); jerr != nil {
		t.Fatalf("record.mjs: %v %v\n%s", err, jerr, out)
	}
	for _, r := range res.Responses {
		var sb strings.Builder
		fmt.Fprintf(&sb, "%d\n", r.Status)
		for k, v := range r.Headers {
			fmt.Fprintf(&sb, "%s: %s\n", k, v)
		}
		sb.WriteString(r.Body)
		w.rec.add(fmt.Sprintf("Chromium (%s): %s", name, r.URL), sb.String())
	}
	for i, s := range res.Texts {
		w.rec.add(fmt.Sprintf("Chromium (%s): text %d", name, i), s)
	}
	if err != nil || res.Error != "" {
		t.Fatalf("browser as %s: step %d failed at %s: %s (%v)\nscreenshots: %v", name, res.Step, res.URL, res.Error, err, res.Screenshots)
	}
	if len(res.Responses) == 0 {
		t.Fatalf("browser as %s: no answer of the service was captured", name)
	}
	// The login went through the hub's OAuth: its callback answered.
	var callback bool
	for _, r := range res.Responses {
		if strings.Contains(r.URL, w.prefix+"oauth_callback?") && r.Status == http.StatusFound {
			callback = true
		}
	}
	if !callback {
		t.Errorf("browser as %s: the service's oauth_callback never answered with a redirect", name)
	}
	t.Logf("browser as %s: %d answers of the service, step times %v ms, screenshots %v", name, len(res.Responses), res.MS, res.Screenshots)
	return &res
}

type browsed struct {
	URL         string   `json:"url"`
	Texts       []string `json:"texts"`
	Screenshots []string `json:"screenshots"`
	MS          []int    `json:"ms"`
	Error       string   `json:"error"`
	Step        int      `json:"step"`
	Responses   []struct {
		URL     string            `json:"url"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	} `json:"responses"`
}

func wait(sel string) map[string]any  { return map[string]any{"wait": sel} }
func text(sel string) map[string]any  { return map[string]any{"text": sel} }
func click(sel string) map[string]any { return map[string]any{"click": sel} }
func shot(name string) map[string]any { return map[string]any{"screenshot": name} }

// tableRows splits a table's innerText into rows of cells.
func tableRows(s string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line = strings.TrimRight(line, "\t "); line != "" {
			cells := strings.Split(line, "\t")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			rows = append(rows, cells)
		}
	}
	return rows
}

// column is one column of a table's innerText, by its header.
func column(t *testing.T, table, header string) []string {
	t.Helper()
	rows := tableRows(table)
	if len(rows) == 0 {
		t.Fatalf("empty table")
	}
	i := slices.Index(rows[0], header)
	if i < 0 {
		t.Fatalf("no column %q in %q", header, rows[0])
	}
	var out []string
	for _, r := range rows[1:] {
		if i < len(r) {
			out = append(out, r[i])
		} else {
			out = append(out, "")
		}
	}
	return out
}

// recorder keeps every answer of the service the test saw (API replies,
// pages, Chromium's captures, the CLI's output) for the secret search.
type recorder struct {
	mu       sync.Mutex
	items    []recorded
	controls []recorded
	launches []launchForm
}

type recorded struct {
	label, text string
	want        string // controls: the marker value that must be found
}

func (r *recorder) add(label, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, recorded{label: label, text: text})
}

func (r *recorder) control(label, text, want string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.controls = append(r.controls, recorded{label: label, text: text, want: want})
}

// recordingTransport records every answer under prefix: status, headers
// (Set-Cookie, Location), body.
type recordingTransport struct {
	base   http.RoundTripper
	rec    *recorder
	prefix string
}

func (rt recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	if err != nil || !strings.HasPrefix(req.URL.Path, rt.prefix) {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s\n", resp.Status)
	resp.Header.Write(&sb)
	sb.Write(b)
	rt.rec.add(req.Method+" "+req.URL.Path, sb.String())
	return resp, nil
}

// marker is one thing no answer may hold.
type marker struct{ name, value string }

// markers: the consumer secret; the private key (privateKeyMarkers); the managed service's own hub token (its
// OAuth client secret too), the admin service's token and every user's
// token (the caller's own included: no answer needs to echo it); and raw
// auth_state: the launch's oauth_signature and oauth_nonce, and launch
// fields ltigrade keeps only in auth_state (lis_person_name_full, with a
// unique value per student, and the raw parameter names).
func (w *svcE2E) markers(t *testing.T) []marker {
	t.Helper()
	ms := []marker{{"the consumer secret", svcSecret},
		{"the managed service's JUPYTERHUB_API_TOKEN", w.serviceToken}, {"the admin service's token", w.adminToken}}
	ms = append(ms, privateKeyMarkers(t, w.keyFile)...)
	for who, tok := range w.tokens {
		ms = append(ms, marker{"the hub token of caller " + who, tok})
	}
	for s, name := range w.fullNames {
		ms = append(ms, marker{"lis_person_name_full of " + s + " (raw auth_state)", name})
	}
	for _, key := range []string{"lis_person_name_full", "oauth_signature", "oauth_nonce", "tool_consumer_info_product_family_code", "basic-lti-launch-request"} {
		ms = append(ms, marker{"raw launch parameter " + key, key})
	}
	for i, f := range w.rec.launches {
		ms = append(ms, marker{fmt.Sprintf("oauth_signature of launch %d", i+1), f.Params["oauth_signature"]},
			marker{fmt.Sprintf("oauth_nonce of launch %d", i+1), f.Params["oauth_nonce"]})
	}
	for _, m := range ms {
		if len(m.value) < 8 {
			t.Fatalf("marker %q is too short to search for (%d bytes)", m.name, len(m.value))
		}
	}
	return ms
}

// searchSecrets searches everything the test recorded, and the hub's log
// (the hub and the managed service write there), for every marker. The
// controls (the hub's own answers that created the tokens) must show up,
// or the search itself is broken.
func (w *svcE2E) searchSecrets(t *testing.T) {
	ms := w.markers(t)
	w.rec.mu.Lock()
	items := append([]recorded(nil), w.rec.items...)
	controls := append([]recorded(nil), w.rec.controls...)
	w.rec.mu.Unlock()
	var hitValues []string
	found := func(text string) []string {
		var hit []string
		hitValues = hitValues[:0]
		for _, m := range ms {
			if strings.Contains(text, m.value) {
				hit = append(hit, m.name)
				hitValues = append(hitValues, m.value)
			}
		}
		return hit
	}
	for _, c := range controls {
		if found(c.text); !slices.Contains(hitValues, c.want) {
			t.Errorf("control: the search did not find the token in %s", c.label)
		}
	}
	var apiAnswers, browserAnswers, cli int
	for _, it := range items {
		switch {
		case strings.HasPrefix(it.label, "Chromium"):
			browserAnswers++
		case strings.HasPrefix(it.label, "output of"):
			cli++
		case strings.HasPrefix(it.label, "the hub's"):
		default:
			apiAnswers++
		}
		if hits := found(it.text); len(hits) > 0 {
			t.Errorf("%s holds %s", it.label, strings.Join(hits, ", "))
		}
	}
	logText, err := os.ReadFile(w.hub.Log)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(logText), "\n") {
		if hits := found(line); len(hits) > 0 {
			t.Errorf("line %d of the hub's log (hub and managed service) holds %s", i+1, strings.Join(hits, ", "))
		}
	}
	t.Logf("searched %d answers of the service by Go clients, %d captured in Chromium, %d CLI outputs, %d answers of the hub's REST API and %d lines of the hub's log for %d markers; %d controls found",
		apiAnswers, browserAnswers, cli, len(items)-apiAnswers-browserAnswers-cli, strings.Count(string(logText), "\n"), len(ms), len(controls))
	if apiAnswers < 100 || browserAnswers < 6 || cli < 10 {
		t.Errorf("too little was recorded to mean anything: %d API answers, %d browser captures, %d CLI outputs", apiAnswers, browserAnswers, cli)
	}
}

func readAll(t *testing.T, files ...string) []byte {
	t.Helper()
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// privateKeyMarkers: the PEM armour; every line of the PEM's base64 that
// encodes only what follows the public modulus (the lines before it hold
// n, which the JWKS rightly publishes, and could match it), and the
// longest alphanumeric run of each, in case an encoder escaped the rest;
// and the private numbers (d, p, q, dp, dq, qi) as JWK base64url, base64,
// hex and decimal would spell them.
func privateKeyMarkers(t *testing.T, keyFile string) []marker {
	t.Helper()
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil || !strings.Contains(block.Type, "PRIVATE KEY") {
		t.Fatalf("%s is not a PEM private key", keyFile)
	}
	var rk *rsa.PrivateKey
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		rk, _ = k.(*rsa.PrivateKey)
	} else if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		rk = k
	}
	if rk == nil {
		t.Fatalf("%s: not an RSA private key", keyFile)
	}
	ms := []marker{{"PEM armour of a private key", "PRIVATE KEY"}}
	nAt := bytes.Index(block.Bytes, rk.N.Bytes())
	if nAt < 0 {
		t.Fatalf("%s: the modulus is not in the key's DER", keyFile)
	}
	nEnd := nAt + len(rk.N.Bytes())
	alnum := regexp.MustCompile(`[A-Za-z0-9]+`)
	n := 0
	for _, line := range strings.Split(string(pemBytes), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "-----") {
			continue
		}
		n++
		// Line n (64 characters) encodes DER bytes [48(n-1), 48n).
		if 48*(n-1) < nEnd {
			continue
		}
		ms = append(ms, marker{fmt.Sprintf("line %d of the private key's base64", n), line})
		longest := ""
		for _, run := range alnum.FindAllString(line, -1) {
			if len(run) > len(longest) {
				longest = run
			}
		}
		if len(longest) >= 16 && longest != line {
			ms = append(ms, marker{fmt.Sprintf("line %d of the private key's base64 (its longest alphanumeric run)", n), longest})
		}
	}
	if len(ms) < 15 {
		t.Fatalf("the private key gave only %d markers; not a real key?", len(ms))
	}
	rk.Precompute()
	for _, c := range []struct {
		name string
		v    *big.Int
	}{{"d", rk.D}, {"p", rk.Primes[0]}, {"q", rk.Primes[1]}, {"dp", rk.Precomputed.Dp}, {"dq", rk.Precomputed.Dq}, {"qi", rk.Precomputed.Qinv}} {
		b := c.v.Bytes()
		for enc, s := range map[string]string{"base64url": base64.RawURLEncoding.EncodeToString(b), "base64": base64.StdEncoding.EncodeToString(b),
			"hex": hex.EncodeToString(b), "decimal": c.v.String()} {
			ms = append(ms, marker{fmt.Sprintf("the private key's %s in %s", c.name, enc), s[:24]})
		}
	}
	return ms
}
