package e2e

// Server-side grading against the real thing (issue 10): the real hub of
// service_test.go runs `ltigrade serve` as a managed service with
// [[graders]] for two assignments, an otter-grader one (the autograder zip
// made here by the real `otter assign`) and an nbgrader one (a course
// folder whose source/ the real `nbgrader generate_assignment` released).
// A student runs `ltigrade submit NOTEBOOK --wait --json` "in a terminal in
// their server": as their own Unix account, in their home, with exactly the
// environment the spawner gave their single-user server (the wrapper of
// jupyterhub_test.go dumps it to ~/.e2e-spawn-env), so with that server's
// JUPYTERHUB_API_TOKEN and the LTIGRADE_URL ltigrade's pre-spawn hook set.
// The LMS must receive exactly what the notebook's tests earn, in that
// student's column only; submissions for another student's notebook or an
// assignment never launched are refused with nothing sent; hostile
// notebooks go through the same path and end as a failure or their real
// score, with the service still answering and no secret anywhere.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/sandbox"
)

// TestMain lets sandbox.Available (below) run its probe: a sandbox starts
// the running binary again as `__sandbox-exec`, which this test binary
// must answer (docs/grading-sandbox.md). The service's own sandboxes run in
// the ltigrade binary, not here.
func TestMain(m *testing.M) {
	sandbox.ChildMain()
	os.Exit(m.Run())
}

// needSandboxE2E: the grading sandbox needs root and namespaces. Without
// them the test skips, unless LTIGRADE_SANDBOX_TESTS=require (CI runs as
// root), as the sandbox's own tests do.
func needSandboxE2E(t *testing.T) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("LTIGRADE_SANDBOX_TESTS") == "require" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("server-side grading needs root (the sandbox, and Unix accounts for the students)")
	}
	for _, tool := range []string{"useradd", "userdel", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("%s is needed: %v", tool, err)
		}
	}
	if err := sandbox.Available(); err != nil {
		skip("the grading sandbox is unavailable here: %v", err)
	}
}

// lmsTap keeps every request the LMS receives (URL, headers, body), so the
// test can search what reached it for secrets and count what was sent.
type lmsTap struct {
	mu   sync.Mutex
	reqs []string
	next http.Handler
}

func (l *lmsTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	r.Body = io.NopCloser(bytes.NewReader(b))
	var h strings.Builder
	r.Header.Write(&h)
	l.mu.Lock()
	l.reqs = append(l.reqs, r.Method+" "+r.URL.String()+"\n"+h.String()+"\n"+string(b))
	l.mu.Unlock()
	l.next.ServeHTTP(w, r)
}

func (l *lmsTap) outcomes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reqs {
		if strings.HasPrefix(r, "POST /outcomes") {
			n++
		}
	}
	return n
}

// studentAccount is a Unix account standing for a student's server's user:
// it owns the student's home (the spawner's home_dir_template) and nothing
// else.
type studentAccount struct {
	hubUser  string
	name     string
	uid, gid int
	home     string
	env      []string // the single-user server's environment, as dumped
}

// submitWorld is the test's world on top of the grading service's.
type submitWorld struct {
	*svcE2E
	top      *testing.T // the whole test's: accounts live as long as it
	tap      *lmsTap
	grader   map[string]string // GRADER_PYTHON, OTTER, NBGRADER
	students map[string]*studentAccount
	// master notebooks released to students: otter's student copy, nbgrader's release copy
	otterStudent, nbgraderRelease []byte
}

// Points of the two assignments, by construction of the notebooks below:
// otter hw1 has q1 (add, 2 points) and q2 (mul, 1 point); nbgrader hw2 has
// test_add (3 points) and test_mul (1 point).
const (
	otterAdd, otterMul, otterTotal = 2.0, 1.0, 3.0
	nbAdd, nbMul, nbTotal          = 3.0, 1.0, 4.0
)

const (
	goodAdd = "def add(a, b):\n    return a + b\n"
	goodMul = "def mul(a, b):\n    return a * b\n"
	badAdd  = "def add(a, b):\n    return 0\n"
	badMul  = "def mul(a, b):\n    return a + b\n"
)

func TestSubmitEndToEnd(t *testing.T) {
	needSandboxE2E(t)
	env := loadHubEnv(t)
	genv := loadGraderEnv(t)
	start := time.Now()

	// What the instructor prepares: real otter assign and nbgrader
	// generate_assignment output, before the service starts (its config
	// names them).
	course := t.TempDir()
	ghome := filepath.Join(course, "grader-home")
	mustMkdir(t, ghome)
	zip, otterStudent := otterAssign(t, genv, course, ghome)
	nbCourse, nbRelease := nbgraderCourse(t, genv, course, ghome)
	sbUser := tempAccount(t, "ltgsb-", "")
	extra := fmt.Sprintf(`
[submit]
sandbox_user = %q
interval = "0s"
workers = 2

[[graders]]
course = %q
assignment = "Homework 1"
kind = "otter"
autograder = %q
python = %q
timeout = "4m"

[[graders]]
course = %q
assignment = "Homework 2"
kind = "nbgrader"
autograder = %q
python = %q
timeout = "4m"
`, sbUser.name, svcCourse, zip, genv["GRADER_PYTHON"], svcCourse, nbCourse, genv["GRADER_PYTHON"])

	w := &submitWorld{svcE2E: setupService(t, env, extra), top: t, grader: genv, students: map[string]*studentAccount{},
		otterStudent: otterStudent, nbgraderRelease: nbRelease}
	// Nothing has reached the LMS yet: from here on, every request does
	// through the tap.
	w.tap = &lmsTap{next: w.lms.next}
	w.lms.next = w.tap
	t.Logf("set-up (otter assign, nbgrader, build, hub with the managed service) took %s", time.Since(start).Round(time.Millisecond))

	step(t, "1 launches: bob opens Homework 1 and 2, alice Homework 1 only; their servers start", func(t *testing.T) {
		w.launch(t, "bob", "hw1")
		w.launch(t, "bob", "hw2")
		w.launch(t, "alice", "hw1")
		for _, s := range []string{"bob", "alice"} {
			w.hubAPI(t, "POST", "/hub/api/users/"+s+"/server", nil, 0)
		}
		ss := w.localSessions(t)
		for deadline := time.Now().Add(recordDelay + recordTimeout + loginMargin); len(ss) < 3 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			ss = w.localSessions(t)
		}
		if len(ss) != 3 {
			t.Fatalf("sessions list --json: %d sessions, want 3:\n%s", len(ss), jsonText(ss))
		}
		w.serviceToken = managedServiceToken(t, w.bin)
		// The hub admin sees every submission (the refusals' count).
		w.tokens[admin] = w.newToken(t, adminUser, nil)
	})

	step(t, "2 each student is a Unix account with their server's environment, and can read none of the hub's files", func(t *testing.T) {
		for _, s := range []string{"bob", "alice"} {
			w.students[s] = w.studentAccount(t, s)
		}
		bob := w.students["bob"]
		for _, k := range []string{"JUPYTERHUB_API_TOKEN", "LTIGRADE_URL", "HOME"} {
			if bob.getenv(k) == "" {
				t.Fatalf("bob's server has no %s in its environment", k)
			}
		}
		if !strings.HasSuffix(bob.getenv("LTIGRADE_URL"), "/services/"+svcName+"/") {
			t.Errorf("LTIGRADE_URL in bob's server is %q, want the service's URL", bob.getenv("LTIGRADE_URL"))
		}
		for _, f := range []string{w.config, w.database, w.secretFile, w.keyFile, filepath.Join(w.students["alice"].home, ".e2e-spawn-env")} {
			if _, _, code := w.asStudent(t, bob, "/usr/bin/test", "-r", f); code == 0 {
				t.Fatalf("bob's account can read %s; the test proves nothing", f)
			}
		}
		// The notebooks, as nbgitpuller would have put them into the
		// launches' checkout (materials/): the students' answers.
		w.put(t, bob, "materials/hw1/hw1.ipynb", w.otterNotebook(t, goodAdd, badMul, ""))
		w.put(t, bob, "materials/hw2/hw2.ipynb", w.nbgraderNotebook(t, goodAdd+"\n"+badMul))
		w.put(t, w.students["alice"], "materials/hw1/hw1.ipynb", w.otterNotebook(t, goodAdd, goodMul, ""))
		w.put(t, w.students["alice"], "materials/hw2/hw2.ipynb", w.nbgraderNotebook(t, goodAdd+"\n"+goodMul))
		// The control: the account runs, and reads its own notebook.
		if out, errOut, code := w.asStudent(t, bob, "/usr/bin/test", "-r", filepath.Join(bob.home, "materials", "hw1", "hw1.ipynb")); code != 0 {
			t.Fatalf("bob's account cannot read his own notebook: exit %d\n%s%s", code, out, errOut)
		}
	})

	step(t, "3 bob submits his otter notebook: the LMS gets exactly 2 of 3 in his Homework 1 column", func(t *testing.T) {
		v := w.submit(t, "bob", "materials/hw1/hw1.ipynb", 0)
		w.wantView(t, v, "delivered", "Homework 1", otterAdd, otterTotal)
		w.wantLMS(t, "bob", "hw1", otterAdd/otterTotal, 1)
		if g := w.gradesOf("alice", "hw1"); len(g) != 0 {
			t.Errorf("alice's Homework 1 column holds %+v after bob's submission, want nothing", g)
		}
	})

	step(t, "4 bob submits his nbgrader notebook: 3 of 4 in his Homework 2 column", func(t *testing.T) {
		v := w.submit(t, "bob", "materials/hw2/hw2.ipynb", 0)
		w.wantView(t, v, "delivered", "Homework 2", nbAdd, nbTotal)
		w.wantLMS(t, "bob", "hw2", nbAdd/nbTotal, 1)
	})

	step(t, "5 alice submits hers: full marks in her column, bob's untouched", func(t *testing.T) {
		v := w.submit(t, "alice", "materials/hw1/hw1.ipynb", 0)
		w.wantView(t, v, "delivered", "Homework 1", otterAdd+otterMul, otterTotal)
		w.wantLMS(t, "alice", "hw1", 1, 1)
		w.wantLMS(t, "bob", "hw1", otterAdd/otterTotal, 1)
		w.wantLMS(t, "bob", "hw2", nbAdd/nbTotal, 1)
	})

	step(t, "6 refusals: another student's notebook, an assignment never launched; nothing sent", func(t *testing.T) {
		before, subs := w.tap.outcomes(), w.submissionCount(t)
		bob, alice := w.students["bob"], w.students["alice"]
		// bob names alice's notebook: it is outside his notebook root.
		out, errOut, code := w.asStudent(t, bob, w.bin, "submit", filepath.Join(alice.home, "materials", "hw1", "hw1.ipynb"), "--wait", "--json")
		if code != 7 && code != 3 {
			t.Errorf("bob submitting alice's notebook: exit %d, want 7 or 3\n%s%s", code, out, errOut)
		}
		t.Logf("bob submitting alice's notebook: exit %d: %s", code, strings.TrimSpace(errOut))
		// The service itself, asked for that path with bob's server token
		// (as a client that skips the CLI's check would).
		nb, _ := os.ReadFile(filepath.Join(bob.home, "materials", "hw1", "hw1.ipynb"))
		for _, p := range []string{"../jupyter-alice/materials/hw1/hw1.ipynb", filepath.Join(alice.home, "materials", "hw1", "hw1.ipynb")} {
			body, _ := json.Marshal(map[string]any{"path": p, "notebook": nb})
			r := w.get(t, bob.getenv("JUPYTERHUB_API_TOKEN"), "POST", "api/submissions", string(body))
			if c := r.header.Get("Ltigrade-Exit-Code"); r.status/100 == 2 || (c != "3" && c != "7" && c != "2") {
				t.Errorf("POST api/submissions as bob for %q: %d, exit %q, want a refusal\n%s", p, r.status, c, short(r.body))
			}
			t.Logf("POST api/submissions as bob for %q: %d, exit %s: %s", p, r.status, r.header.Get("Ltigrade-Exit-Code"), short(r.body))
		}
		// alice never launched Homework 2.
		out, errOut, code = w.asStudent(t, alice, w.bin, "submit", "materials/hw2/hw2.ipynb", "--wait", "--json")
		if code != 3 && code != 7 {
			t.Errorf("alice submitting Homework 2, never launched: exit %d, want 3 or 7\n%s%s", code, out, errOut)
		}
		t.Logf("alice submitting Homework 2: exit %d: %s", code, strings.TrimSpace(errOut))
		if !strings.Contains(errOut, "hw2") {
			t.Errorf("the refusal does not name the notebook:\n%s", errOut)
		}
		if after := w.tap.outcomes(); after != before {
			t.Errorf("the refused submissions reached the LMS: %d outcome requests, were %d", after, before)
		}
		if n := w.submissionCount(t); n != subs {
			t.Errorf("the refused submissions were journaled: %d submissions, were %d", n, subs)
		}
		if g := w.gradesOf("alice", "hw2"); len(g) != 0 {
			t.Errorf("alice's Homework 2 column holds %+v", g)
		}
	})

	// Hostile notebooks through the whole path (the sandbox's and
	// autograde's own tests cover the rest, see docs/submit.md). Each keeps
	// bob's answers (add right, mul wrong: 2 of 3) unless it says.
	hostile := []struct {
		name     string
		add, mul string
		cell     string
		want     float64 // the points its tests earn
	}{
		// os.write(1, ...) reaches the grader's own stdout (the kernel
		// inherits it), where the score line is read; print() only reaches
		// the executed notebook.
		{"prints a fake score line", badAdd, badMul, `import os, sys
line = '{"score": 3, "out_of": 3}'
print(line)
os.write(1, ("\n" + line + "\n").encode())
os.write(2, ("\n" + line + "\n").encode())
`, 0},
		// What it reads goes to the grader's output (shown in the reply)
		// and, if anything was readable, it answers mul right: a leak
		// would show as 3 of 3 at the LMS, not only in the output.
		{"reads the config, the database and the secret file", goodAdd, badMul, fmt.Sprintf(`import glob, os
got = False
for p in [%q, %q, %q, %q] + glob.glob('/etc/ltigrade/*') + glob.glob('/etc/jupyterhub/*'):
    try:
        data = open(p, 'rb').read()[:4000]
        got = True
        os.write(1, p.encode() + b': ' + data + b'\n')
    except Exception as e:
        os.write(1, ('refused: %%s %%r\n' %% (p, e)).encode())
if got:
    def mul(a, b):
        return a * b
`, w.config, w.database, w.secretFile, w.keyFile), otterAdd},
		{"prints 50 MB", goodAdd, badMul, "import os, sys\nfor _ in range(50):\n    os.write(1, b'y' * (1 << 20))\n    sys.stdout.write('z' * (1 << 20))\n", otterAdd},
	}
	for i, h := range hostile {
		step(t, fmt.Sprintf("7%c hostile: %s", 'a'+i, h.name), func(t *testing.T) {
			bob := w.students["bob"]
			nbPath := fmt.Sprintf("materials/hw1/hostile%d.ipynb", i)
			w.put(t, bob, nbPath, w.otterNotebook(t, h.add, h.mul, h.cell))
			before := w.gradesOf("bob", "hw1")
			out, errOut, code := w.asStudent(t, bob, w.bin, "submit", nbPath, "--wait", "--json")
			var v submissionReply
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("submit --json: exit %d, %v\n%s%s", code, err, out, errOut)
			}
			t.Logf("%s: exit %d, state %s, score %v/%v, reason %q, %d bytes of output tail, its start: %.300q", h.name, code, v.State, fv(v.Score), fv(v.OutOf), v.Reason, len(v.Output), v.Output)
			switch v.State {
			case "failed":
				if code != 6 {
					t.Errorf("a failed grading exits %d, want 6", code)
				}
				if g := w.gradesOf("bob", "hw1"); len(g) != 1 || len(before) != 1 || g[0].Writes != before[0].Writes {
					t.Errorf("a failed grading changed bob's column: %+v → %+v", before, g)
				}
			case "delivered":
				w.wantView(t, &v, "delivered", "Homework 1", h.want, otterTotal)
				w.wantLMS(t, "bob", "hw1", h.want/otterTotal, before[0].Writes+1)
			default:
				t.Errorf("state %q (exit %d), want failed or delivered", v.State, code)
			}
			// The service is still there and answers bob.
			if r := w.get(t, "", "GET", "healthz", ""); r.status != http.StatusOK {
				t.Errorf("healthz after the hostile notebook: %d", r.status)
			}
			if r := w.get(t, bob.getenv("JUPYTERHUB_API_TOKEN"), "GET", "api/health", ""); r.status != http.StatusOK {
				t.Errorf("api/health as bob after the hostile notebook: %d\n%s", r.status, short(r.body))
			}
		})
	}

	step(t, "8 no reply, CLI output or request to the LMS holds a secret, a token or a hub file's content", func(t *testing.T) {
		ms := w.submitMarkers(t)
		w.rec.mu.Lock()
		items := append([]recorded(nil), w.rec.items...)
		w.rec.mu.Unlock()
		w.tap.mu.Lock()
		for i, r := range w.tap.reqs {
			items = append(items, recorded{label: fmt.Sprintf("request %d to the LMS", i+1), text: r})
		}
		w.tap.mu.Unlock()
		// The submissions as the service keeps them (outputs included),
		// through the grader's view.
		r := w.get(t, w.tokens[admin], "GET", "api/submissions", "")
		items = append(items, recorded{label: "api/submissions", text: string(r.body)})
		var cli, lms int
		for _, it := range items {
			if strings.HasPrefix(it.label, "output of") {
				cli++
			}
			if strings.HasPrefix(it.label, "request") {
				lms++
			}
			for _, m := range ms {
				if strings.Contains(it.text, m.value) {
					t.Errorf("%s holds %s", it.label, m.name)
				}
			}
		}
		t.Logf("searched %d recorded items (%d CLI outputs, %d requests to the LMS) for %d markers", len(items), cli, lms, len(ms))
		if cli < 8 || lms < 4 {
			t.Errorf("too little was recorded to mean anything: %d CLI outputs, %d LMS requests", cli, lms)
		}
	})
	t.Logf("whole test took %s", time.Since(start).Round(time.Millisecond))
}

// submitMarkers: what no answer may hold: the consumer secret, the
// private key, every hub token in play (the students' servers' own, the
// managed service's, the admin service's), and what a leaked hub file
// would show (the config's table names, SQLite's header).
func (w *submitWorld) submitMarkers(t *testing.T) []marker {
	ms := []marker{{"the consumer secret", svcSecret}, {"the admin service's token", w.adminToken},
		{"the managed service's JUPYTERHUB_API_TOKEN", w.serviceToken},
		{"the config file's content", "[[lti11.consumers]]"}, {"the config file's content", "secret_file ="},
		{"the database's content", "SQLite format 3"}}
	ms = append(ms, privateKeyMarkers(t, w.keyFile)...)
	for s, a := range w.students {
		ms = append(ms, marker{s + "'s server token", a.getenv("JUPYTERHUB_API_TOKEN")})
	}
	for _, m := range ms {
		if len(m.value) < 8 {
			t.Fatalf("marker %q is too short to search for", m.name)
		}
	}
	return ms
}

// submissionReply is `submit --json`'s answer, the part checked.
type submissionReply struct {
	ID         int64    `json:"id"`
	Username   string   `json:"username"`
	Path       string   `json:"path"`
	Assignment string   `json:"assignment"`
	State      string   `json:"state"`
	Delivery   string   `json:"delivery"`
	Score      *float64 `json:"score"`
	OutOf      *float64 `json:"out_of"`
	Reason     string   `json:"reason"`
	Output     string   `json:"output"`
}

func fv(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// submit runs `ltigrade submit NB --wait --json` as the student, wanting
// exit code want, and returns its answer.
func (w *submitWorld) submit(t *testing.T, student, nb string, want int) *submissionReply {
	t.Helper()
	start := time.Now()
	out, errOut, code := w.asStudent(t, w.students[student], w.bin, "submit", nb, "--wait", "--json")
	var v submissionReply
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != want {
		t.Fatalf("%s: ltigrade submit %s --wait --json: exit %d (want %d), %v\nstdout:\n%s\nstderr:\n%s", student, nb, code, want, err, out, errOut)
	}
	t.Logf("%s submitted %s: %s, %v/%v in %s", student, nb, v.State, fv(v.Score), fv(v.OutOf), time.Since(start).Round(time.Millisecond))
	if v.Username != student || v.Path != nb {
		t.Errorf("the submission is %s's %s, want %s's %s", v.Username, v.Path, student, nb)
	}
	return &v
}

func (w *submitWorld) wantView(t *testing.T, v *submissionReply, state, assignment string, score, outOf float64) {
	t.Helper()
	if v.State != state || v.Assignment != assignment || v.Score == nil || v.OutOf == nil || !close4(*v.Score, score) || !close4(*v.OutOf, outOf) {
		t.Errorf("submission %d: %s for %q, %v/%v (%s), want %s for %q, %g/%g\noutput:\n%.2000s", v.ID, v.State, v.Assignment, fv(v.Score), fv(v.OutOf), v.Reason,
			state, assignment, score, outOf, v.Output)
	}
}

// wantLMS: the LMS holds exactly score in student's column of assignment,
// written writes times.
func (w *submitWorld) wantLMS(t *testing.T, student, assignment string, score float64, writes int) {
	t.Helper()
	got := w.gradesOf(student, assignment)
	if len(got) != 1 {
		t.Errorf("the LMS holds %d grades for %s's %s, want 1: %+v", len(got), student, assignment, got)
		return
	}
	f, err := strconv.ParseFloat(got[0].Score, 64)
	if err != nil || math.Abs(f-score) > 1e-4 || got[0].Writes != writes {
		t.Errorf("the LMS holds %s (written %d times) for %s's %s, want %.4f written %d times", got[0].Score, got[0].Writes, student, assignment, score, writes)
	}
}

func (w *submitWorld) submissionCount(t *testing.T) int {
	t.Helper()
	r := w.get(t, w.tokens[admin], "GET", "api/submissions", "")
	var list []json.RawMessage
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != http.StatusOK {
		t.Fatalf("api/submissions as the hub admin: %d %v\n%s", r.status, err, short(r.body))
	}
	return len(list)
}

// studentAccount waits for the student's server to dump its environment,
// makes a Unix account owning the student's home, and opens the way to it
// (the test's temp dirs are 0700: they become traversable, not readable).
func (w *submitWorld) studentAccount(t *testing.T, hubUser string) *studentAccount {
	t.Helper()
	home := w.home(hubUser)
	dump := filepath.Join(home, ".e2e-spawn-env")
	var envLines []string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(dump)
		lines := strings.Split(string(b), "\n")
		envLines = envLines[:0]
		var token bool
		// Whole lines only: the wrapper may be writing the file. A value
		// with a newline in it continues on a line without KEY=; such lines
		// are dropped (none of the variables used here has one).
		for _, line := range lines[:len(lines)-1] {
			k, _, ok := strings.Cut(line, "=")
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				continue
			}
			envLines = append(envLines, line)
			token = token || strings.HasPrefix(line, "JUPYTERHUB_API_TOKEN=")
		}
		if token {
			break
		}
	}
	a := tempAccount(w.top, "ltgst-", home)
	a.hubUser, a.home, a.env = hubUser, home, slices.Clone(envLines)
	if a.getenv("JUPYTERHUB_API_TOKEN") == "" {
		t.Fatalf("%s's server dumped no JUPYTERHUB_API_TOKEN in %s", hubUser, dump)
	}
	// Traverse only, for the path to the home.
	for d := filepath.Dir(home); d != "/" && strings.HasPrefix(d, filepath.Dir(w.tmp)); d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o011 != 0o011 {
			os.Chmod(d, fi.Mode().Perm()|0o011)
		}
	}
	chownTree(t, home, a.uid, a.gid)
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *studentAccount) getenv(k string) string {
	v := ""
	for _, kv := range a.env {
		if val, ok := strings.CutPrefix(kv, k+"="); ok {
			v = val
		}
	}
	return v
}

// tempAccount makes a system account removed when the test ends.
func tempAccount(t *testing.T, prefix, home string) *studentAccount {
	t.Helper()
	name := prefix + randHex(4)
	if home == "" {
		home = "/nonexistent"
	}
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", home, "--shell", "/usr/sbin/nologin",
		"--user-group", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
		if _, err := user.LookupGroup(name); err == nil {
			exec.Command("groupdel", name).Run()
		}
	})
	pw, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	a := &studentAccount{name: name}
	a.uid, _ = strconv.Atoi(pw.Uid)
	a.gid, _ = strconv.Atoi(pw.Gid)
	return a
}

func chownTree(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// asStudent runs a command "in a terminal in the student's server": as
// their account, in their home, with exactly their server's environment.
func (w *submitWorld) asStudent(t *testing.T, a *studentAccount, args ...string) (string, string, int) {
	t.Helper()
	argv := append([]string{"--reuid", strconv.Itoa(a.uid), "--regid", strconv.Itoa(a.gid), "--init-groups", "--", "/usr/bin/env", "-i"}, a.env...)
	cmd := exec.Command("setpriv", append(argv, args...)...)
	cmd.Dir = a.home
	what := a.hubUser + ": " + strings.Join(append([]string{filepath.Base(args[0])}, args[1:]...), " ")
	return w.run(t, cmd, what)
}

// put writes a notebook into the student's home, owned by them.
func (w *submitWorld) put(t *testing.T, a *studentAccount, rel string, nb []byte) {
	t.Helper()
	p := filepath.Join(a.home, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, p, string(nb), 0o600)
	chownTree(t, filepath.Join(a.home, strings.Split(rel, "/")[0]), a.uid, a.gid)
}

// otterNotebook is otter's student copy with add and mul answered, and a
// last cell of the student's own (hostile ones) if cell != "".
func (w *submitWorld) otterNotebook(t *testing.T, add, mul, cell string) []byte {
	t.Helper()
	nb := w.otterStudent
	for fn, src := range map[string]string{"add": add, "mul": mul} {
		nb = []byte(fillIn(t, nb, func(s string, _ map[string]any) bool {
			return strings.HasPrefix(strings.TrimSpace(s), "def "+fn+"(")
		}, src))
	}
	if cell != "" {
		nb = appendCell(t, nb, cell)
	}
	return nb
}

// nbgraderNotebook is nbgrader's released copy with the answer cell filled.
func (w *submitWorld) nbgraderNotebook(t *testing.T, answer string) []byte {
	t.Helper()
	return []byte(fillIn(t, w.nbgraderRelease, func(s string, _ map[string]any) bool {
		return strings.Contains(s, "NotImplementedError")
	}, answer))
}

func appendCell(t *testing.T, nb []byte, src string) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(nb, &doc); err != nil {
		t.Fatal(err)
	}
	cells := doc["cells"].([]any)
	doc["cells"] = append(cells, map[string]any{"cell_type": "code", "id": "student-extra", "metadata": map[string]any{},
		"source": src, "outputs": []any{}, "execution_count": nil})
	b, _ := json.MarshalIndent(doc, "", " ")
	return b
}

// otterAssign writes an otter master notebook (q1: add, 2 points; q2: mul,
// 1 point), runs the real `otter assign`, and returns the autograder zip
// and the student copy.
func otterAssign(t *testing.T, genv map[string]string, dir, home string) (string, []byte) {
	t.Helper()
	od := filepath.Join(dir, "otter")
	mustMkdir(t, od)
	raw := func(s string) map[string]any { return cell("raw", s, nil) }
	mustWrite(t, filepath.Join(od, "hw1.ipynb"), ipynb(
		raw("# ASSIGNMENT CONFIG\nname: hw1\nrun_tests: false\nexport_cell: false\ncheck_all_cell: false\ninit_cell: true\n"),
		cell("markdown", "# Homework 1", nil),
		raw(fmt.Sprintf("# BEGIN QUESTION\nname: q1\npoints: %g\n", otterAdd)),
		cell("markdown", "Write `add`.", nil),
		cell("code", "def add(a, b):\n    return a + b # SOLUTION\n", nil),
		raw("# BEGIN TESTS"),
		cell("code", "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n", nil),
		raw("# END TESTS"),
		raw("# END QUESTION"),
		raw(fmt.Sprintf("# BEGIN QUESTION\nname: q2\npoints: %g\n", otterMul)),
		cell("markdown", "Write `mul`.", nil),
		cell("code", "def mul(a, b):\n    return a * b # SOLUTION\n", nil),
		raw("# BEGIN TESTS"),
		cell("code", "assert mul(2, 3) == 6\n", nil),
		raw("# END TESTS"),
		raw("# END QUESTION"),
	), 0o644)
	graderCmd(t, home, od, genv["OTTER"], "assign", "hw1.ipynb", "dist")
	zips, _ := filepath.Glob(filepath.Join(od, "dist", "autograder", "hw1-autograder_*.zip"))
	if len(zips) != 1 {
		t.Fatalf("otter assign made %d autograder zips, want 1: %v", len(zips), zips)
	}
	student, err := os.ReadFile(filepath.Join(od, "dist", "student", "hw1.ipynb"))
	if err != nil {
		t.Fatal(err)
	}
	return zips[0], student
}

// nbgraderCourse makes an nbgrader course folder with source/hw2/hw2.ipynb
// (test_add 3 points, test_mul 1 point), runs the real `nbgrader
// generate_assignment`, and returns the folder and the released notebook.
func nbgraderCourse(t *testing.T, genv map[string]string, dir, home string) (string, []byte) {
	t.Helper()
	course := filepath.Join(dir, "nbgrader")
	mustMkdir(t, filepath.Join(course, "source", "hw2"))
	mustWrite(t, filepath.Join(course, "nbgrader_config.py"), fmt.Sprintf(
		"c = get_config()\nc.CourseDirectory.root = %q\nc.CourseDirectory.course_id = \"e2e101\"\n"+
			"c.CourseDirectory.db_url = %q\n", course, "sqlite:///"+filepath.Join(course, "gradebook.db")), 0o644)
	meta := func(m map[string]any) map[string]any {
		m["schema_version"] = 3
		return map[string]any{"nbgrader": m}
	}
	mustWrite(t, filepath.Join(course, "source", "hw2", "hw2.ipynb"), ipynb(
		cell("markdown", "# Homework 2\nWrite `add` and `mul`.", nil),
		cell("code", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION\n\n"+
			"def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION\n",
			meta(map[string]any{"grade": false, "solution": true, "locked": false, "grade_id": "answer"})),
		cell("code", "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n",
			meta(map[string]any{"grade": true, "solution": false, "locked": true, "points": nbAdd, "grade_id": "test_add"})),
		cell("code", "assert mul(2, 3) == 6\n",
			meta(map[string]any{"grade": true, "solution": false, "locked": true, "points": nbMul, "grade_id": "test_mul"})),
	), 0o644)
	graderCmd(t, home, course, genv["NBGRADER"], "generate_assignment", "hw2", "--force")
	released, err := os.ReadFile(filepath.Join(course, "release", "hw2", "hw2.ipynb"))
	if err != nil {
		t.Fatal(err)
	}
	return course, released
}
