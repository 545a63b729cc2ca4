package e2e

// The real graders end to end (issue #5): nbgrader and otter-grader from
// PyPI (scripts/grader-env.sh) grade a tiny course of two students, ltigrade
// pushes the results to the independent oauthlib LMS double
// (testdata/lmsdouble/lms.py), and each student's grade there must equal the
// score this test computes itself from the gradebook / the CSV.

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/testenv"
)

const (
	graderKey    = "grader-course-key"
	graderSecret = "grader-s3cr3t"
)

// graderStudents: alice answers everything right, bob gets one part wrong.
var graderStudents = []string{"alice", "bob"}

var (
	graderEnvOnce sync.Once
	graderEnvVal  map[string]string
	graderEnvErr  error
	graderEnvSkip string
)

// loadGraderEnv reads $LTIGRADE_GRADER_ENV_FILE (written by `make test`),
// else runs scripts/grader-env.sh itself. It skips only when the script said
// PyPI cannot be reached (exit 3).
func loadGraderEnv(t *testing.T) map[string]string {
	t.Helper()
	graderEnvOnce.Do(func() {
		var out []byte
		if f := os.Getenv("LTIGRADE_GRADER_ENV_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				graderEnvErr = fmt.Errorf("LTIGRADE_GRADER_ENV_FILE: %v", err)
				return
			}
			out = b
		} else {
			cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "grader-env.sh"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			b, err := cmd.Output()
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == envExitUnreachable {
				graderEnvSkip = "scripts/grader-env.sh could not reach PyPI (exit 3), so there is no nbgrader or otter-grader to test with:\n" + stderr.String()
				return
			}
			if err != nil {
				graderEnvErr = fmt.Errorf("scripts/grader-env.sh: %v\n%s", err, stderr.String())
				return
			}
			out = b
		}
		env := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
				env[k] = v
			}
		}
		if env["GRADER_ENV_EXIT"] == strconv.Itoa(envExitUnreachable) {
			graderEnvSkip = "scripts/grader-env.sh could not reach PyPI (exit 3; its message is in the `make test` output above), so there is no nbgrader or otter-grader to test with"
			return
		}
		for _, k := range []string{"GRADER_PYTHON", "NBGRADER", "OTTER"} {
			if env[k] == "" {
				graderEnvErr = fmt.Errorf("grader environment lacks %s (got %q)", k, out)
				return
			}
			if _, err := os.Stat(env[k]); err != nil {
				graderEnvErr = fmt.Errorf("grader environment: %s: %v", k, err)
				return
			}
		}
		graderEnvVal = env
	})
	if graderEnvSkip != "" {
		t.Skip(graderEnvSkip)
	}
	if graderEnvErr != nil {
		t.Fatal(graderEnvErr)
	}
	return graderEnvVal
}

// doublePython is the interpreter with oauthlib for lms.py: $LTIGRADE_PYTHON
// (set by `make test`), else scripts/python-env.sh.
func doublePython(t *testing.T) string {
	t.Helper()
	py, err := testenv.Python()
	if err != nil {
		t.Fatal(err)
	}
	return py
}

// graderWorld: ltigrade with a config, the LMS double, a temp dir.
type graderWorld struct {
	e   *e2e // reuses ltigrade/ltigradeCode
	lms string
}

func newGraderWorld(t *testing.T) *graderWorld {
	t.Helper()
	tmp := t.TempDir()
	e := &e2e{t: t, tmp: tmp}
	e.bin = buildLtigrade(t, filepath.Join(tmp, "bin"))
	e.homeTmpl = filepath.Join(tmp, "home", "jupyter-{username}")
	e.database = filepath.Join(tmp, "var", "ltigrade.db")
	secretFile := filepath.Join(tmp, "etc", graderKey+".secret")
	mustMkdir(t, filepath.Dir(secretFile))
	mustMkdir(t, filepath.Dir(e.database))
	mustWrite(t, secretFile, graderSecret+"\n", 0o600)
	e.config = filepath.Join(tmp, "etc", "config.toml")
	mustWrite(t, e.config, fmt.Sprintf(`database = %q

[paths]
home = %q

[[lti11.consumers]]
key = %q
secret_file = %q

[passback]
timeout = "10s"
`, e.database, e.homeTmpl, graderKey, secretFile), 0o600)

	portFile := filepath.Join(tmp, "lms.port")
	cmd := exec.Command(doublePython(t), filepath.Join(repoRoot(t), "testdata", "lmsdouble", "lms.py"),
		"--port-file", portFile, "--consumer", graderKey+":"+graderSecret)
	cmd.Env = cleanEnv()
	logFile := filepath.Join(tmp, "lms.log")
	p := startProc(t, "lms.py", logFile, cmd)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, _ := os.ReadFile(portFile); len(bytes.TrimSpace(b)) > 0 {
			return &graderWorld{e: e, lms: "http://127.0.0.1:" + strings.TrimSpace(string(b))}
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("the LMS double did not start:\n%s", tail(logFile, 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// launch records an LTI 1.1 launch of user into assignment (resource link
// and nbgitpuller checkout both named assignment, opening nb inside it).
func (w *graderWorld) launch(t *testing.T, user, assignment, nb string) string {
	t.Helper()
	sourcedID := "src-" + assignment + "-" + user
	next := "/hub/user-redirect/git-pull?" + url.Values{
		"repo":    {"https://github.com/example/" + assignment},
		"urlpath": {"tree/" + assignment + "/" + nb},
	}.Encode()
	doc, _ := json.Marshal(map[string]any{
		"username": user, "consumer_key": graderKey, "next_url": next,
		"auth_state": map[string]string{
			"lti_version": "LTI-1p0", "lti_message_type": "basic-lti-launch-request",
			"user_id": "lms-" + user, "resource_link_id": assignment,
			"lis_outcome_service_url": w.lms + "/outcomes", "lis_result_sourcedid": sourcedID,
		},
	})
	f := filepath.Join(w.e.tmp, "launch-"+user+"-"+assignment+".json")
	mustWrite(t, f, string(doc), 0o644)
	w.e.ltigrade("record", f)
	return sourcedID
}

// lmsGrades: sourced id → score held by the double.
func (w *graderWorld) lmsGrades(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(w.lms + "/grades.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var gs []map[string]any
	if err := json.Unmarshal(body, &gs); err != nil {
		t.Fatalf("/grades.json: %v\n%s", err, body)
	}
	m := map[string]float64{}
	for _, g := range gs {
		m[gradeSourcedID(g)] = gradeScore(g)
	}
	return m
}

// graderCmd runs a grader tool in dir with an isolated HOME / Jupyter dirs.
func graderCmd(t *testing.T, home, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv("PATH="+filepath.Dir(name)+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+home, "JUPYTER_CONFIG_DIR="+filepath.Join(home, ".jupyter"),
		"JUPYTER_DATA_DIR="+filepath.Join(home, ".local", "share", "jupyter"),
		"JUPYTER_RUNTIME_DIR="+filepath.Join(home, ".local", "share", "jupyter", "runtime"),
		"JUPYTER_PLATFORM_DIRS=1", "PYTHONNOUSERSITE=1", "MPLBACKEND=Agg")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s: %s", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ipynb builds an nbformat 4 notebook; each cell is {cell_type, source, metadata}.
func ipynb(cells ...map[string]any) string {
	for i, c := range cells {
		c["id"] = fmt.Sprintf("cell-%d", i)
		if c["metadata"] == nil {
			c["metadata"] = map[string]any{}
		}
		if c["cell_type"] == "code" {
			c["outputs"] = []any{}
			c["execution_count"] = nil
		}
	}
	b, _ := json.MarshalIndent(map[string]any{
		"cells": cells,
		"metadata": map[string]any{
			"kernelspec":    map[string]any{"name": "python3", "display_name": "Python 3", "language": "python"},
			"language_info": map[string]any{"name": "python"},
		},
		"nbformat": 4, "nbformat_minor": 5,
	}, "", " ")
	return string(b)
}

func cell(kind, src string, meta map[string]any) map[string]any {
	if meta == nil {
		meta = map[string]any{}
	}
	return map[string]any{"cell_type": kind, "source": src, "metadata": meta}
}

// answers: what each student writes. bob's mul is wrong.
var answers = map[string]string{
	"alice": "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n",
	"bob":   "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a + b\n",
}

// fillIn returns the notebook with the source of every code cell for which
// pick returns true replaced by src.
func fillIn(t *testing.T, nb []byte, pick func(src string, meta map[string]any) bool, src string) string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(nb, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range doc["cells"].([]any) {
		cm := c.(map[string]any)
		if cm["cell_type"] != "code" {
			continue
		}
		s := joinSource(cm["source"])
		meta, _ := cm["metadata"].(map[string]any)
		if pick(s, meta) {
			cm["source"] = src
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no answer cell found in the released notebook:\n%s", nb)
	}
	b, _ := json.MarshalIndent(doc, "", " ")
	return string(b)
}

func joinSource(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case []any:
		var b strings.Builder
		for _, l := range s {
			b.WriteString(fmt.Sprint(l))
		}
		return b.String()
	}
	return ""
}

func close4(a, b float64) bool { return math.Abs(a-b) < 5e-5 }

func TestGradersNbgrader(t *testing.T) {
	env := loadGraderEnv(t)
	start := time.Now()
	w := newGraderWorld(t)
	course := filepath.Join(w.e.tmp, "course")
	home := filepath.Join(w.e.tmp, "grader-home")
	mustMkdir(t, home)
	nbgrader := env["NBGRADER"]

	want := map[string]float64{} // sourced id → independently computed score
	sourced := map[string]string{}
	step(t, "1 record launches and build the nbgrader course", func(t *testing.T) {
		for _, s := range graderStudents {
			sourced[s] = w.launch(t, s, "ps1", "ps1.ipynb")
		}
		mustMkdir(t, filepath.Join(course, "source", "ps1"))
		mustWrite(t, filepath.Join(course, "nbgrader_config.py"), fmt.Sprintf(
			"c = get_config()\nc.CourseDirectory.root = %q\nc.CourseDirectory.course_id = \"ds100\"\n"+
				"c.CourseDirectory.db_url = %q\n", course, "sqlite:///"+filepath.Join(course, "gradebook.db")), 0o644)
		nbMeta := func(m map[string]any) map[string]any {
			m["schema_version"] = 3
			return map[string]any{"nbgrader": m}
		}
		mustWrite(t, filepath.Join(course, "source", "ps1", "ps1.ipynb"), ipynb(
			cell("markdown", "# Problem set 1\nWrite `add` and `mul`.", nil),
			cell("code", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION\n\n"+
				"def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION\n",
				nbMeta(map[string]any{"grade": false, "solution": true, "locked": false, "grade_id": "answer"})),
			cell("code", "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n",
				nbMeta(map[string]any{"grade": true, "solution": false, "locked": true, "points": 3, "grade_id": "test_add"})),
			cell("code", "assert mul(2, 3) == 6\n",
				nbMeta(map[string]any{"grade": true, "solution": false, "locked": true, "points": 1, "grade_id": "test_mul"})),
		), 0o644)
		graderCmd(t, home, course, nbgrader, "generate_assignment", "ps1", "--force")
		released, err := os.ReadFile(filepath.Join(course, "release", "ps1", "ps1.ipynb"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range graderStudents {
			graderCmd(t, home, course, nbgrader, "db", "student", "add", s, "--lms-user-id=lms-"+s)
			dir := filepath.Join(course, "submitted", s, "ps1")
			mustMkdir(t, dir)
			mustWrite(t, filepath.Join(dir, "ps1.ipynb"), fillIn(t, released, func(src string, meta map[string]any) bool {
				return strings.Contains(src, "NotImplementedError")
			}, answers[s]), 0o644)
			mustWrite(t, filepath.Join(dir, "timestamp.txt"), "2026-11-20 10:00:00.000000 UTC\n", 0o644)
		}
	})

	step(t, "2 nbgrader autograde ps1", func(t *testing.T) {
		graderCmd(t, home, course, nbgrader, "autograde", "ps1", "--force")
	})

	step(t, "3 compute each score from gradebook.db", func(t *testing.T) {
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(course, "gradebook.db")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		// The assignment's maximum: every grade cell and task cell of its notebooks.
		var max float64
		err = db.QueryRow(`SELECT
			COALESCE((SELECT SUM(gc.max_score) FROM grade_cells gc JOIN base_cell bc ON bc.id = gc.id
				JOIN notebook n ON n.id = bc.notebook_id JOIN assignment a ON a.id = n.assignment_id WHERE a.name = 'ps1'), 0) +
			COALESCE((SELECT SUM(tc.max_score) FROM task_cells tc JOIN base_cell bc ON bc.id = tc.id
				JOIN notebook n ON n.id = bc.notebook_id JOIN assignment a ON a.id = n.assignment_id WHERE a.name = 'ps1'), 0)`).Scan(&max)
		if err != nil {
			t.Fatalf("max score: %v", err)
		}
		for _, s := range graderStudents {
			var raw, penalty float64
			var needsManual int
			err := db.QueryRow(`SELECT
				COALESCE(SUM(COALESCE(g.manual_score, g.auto_score, 0) + COALESCE(g.extra_credit, 0)), 0),
				COALESCE(SUM(g.needs_manual_grade), 0)
				FROM grade g JOIN submitted_notebook sn ON sn.id = g.notebook_id
				JOIN submitted_assignment sa ON sa.id = sn.assignment_id
				JOIN assignment a ON a.id = sa.assignment_id WHERE a.name = 'ps1' AND sa.student_id = ?`, s).Scan(&raw, &needsManual)
			if err != nil {
				t.Fatalf("%s's score: %v", s, err)
			}
			err = db.QueryRow(`SELECT COALESCE(SUM(sn.late_submission_penalty), 0) FROM submitted_notebook sn
				JOIN submitted_assignment sa ON sa.id = sn.assignment_id JOIN assignment a ON a.id = sa.assignment_id
				WHERE a.name = 'ps1' AND sa.student_id = ?`, s).Scan(&penalty)
			if err != nil {
				t.Fatalf("%s's penalty: %v", s, err)
			}
			if needsManual != 0 {
				t.Fatalf("%s: %d grades still need manual grading; the course has only autograded cells", s, needsManual)
			}
			want[sourced[s]] = (raw - penalty) / max
			t.Logf("%s: (%g - %g) / %g = %.4f", s, raw, penalty, max, want[sourced[s]])
		}
		// The course is built so the grader has something to tell apart.
		if want[sourced["alice"]] != 1 || want[sourced["bob"]] != 0.75 {
			t.Fatalf("nbgrader graded alice %.4f and bob %.4f; the course expects 1 and 0.75", want[sourced["alice"]], want[sourced["bob"]])
		}
	})

	step(t, "4 ltigrade nbgrader push sends each score to the LMS", func(t *testing.T) {
		out := w.e.ltigrade("nbgrader", "push", "--gradebook", filepath.Join(course, "gradebook.db"),
			"--assignment", "ps1", "--notebook", "ps1/ps1.ipynb", "--json")
		t.Logf("ltigrade nbgrader push --json:\n%s", out)
		got := w.lmsGrades(t)
		for _, s := range graderStudents {
			g, ok := got[sourced[s]]
			if !ok || !close4(g, want[sourced[s]]) {
				t.Errorf("%s: the LMS holds %v (present %v), want %.4f from the gradebook", s, g, ok, want[sourced[s]])
			}
		}
	})
	t.Logf("nbgrader end to end: %s", time.Since(start).Round(time.Millisecond))
}

// otterGrade is otter grade's CSV step without Docker: `otter run` (its
// library entry point otter.run.main, the same code the CLI calls) on each
// submission, then otter's own merge_scores_to_df, which writes
// final_grades.csv inside `otter grade`.
const otterGrade = `import os, sys
import otter.run
from otter.grade.utils import merge_scores_to_df
ag, out, subs = sys.argv[1], sys.argv[2], sys.argv[3:]
scores = []
for s in subs:
    r = otter.run.main(s, autograder=ag, output_dir=None, no_logo=True)
    r.file = os.path.basename(s)  # what otter grade sets
    scores.append(r)
merge_scores_to_df(scores).to_csv(out, index=False)
`

func TestGradersOtter(t *testing.T) {
	env := loadGraderEnv(t)
	start := time.Now()
	w := newGraderWorld(t)
	dir := filepath.Join(w.e.tmp, "otter")
	home := filepath.Join(w.e.tmp, "grader-home")
	mustMkdir(t, home)
	mustMkdir(t, filepath.Join(dir, "submissions"))
	csvFile := filepath.Join(dir, "final_grades.csv")

	sourced := map[string]string{}
	step(t, "1 record launches, otter assign, two submissions", func(t *testing.T) {
		for _, s := range graderStudents {
			sourced[s] = w.launch(t, s, "hw1", "hw1.ipynb")
		}
		raw := func(s string) map[string]any { return cell("raw", s, nil) }
		mustWrite(t, filepath.Join(dir, "hw1.ipynb"), ipynb(
			raw("# ASSIGNMENT CONFIG\nname: hw1\nrun_tests: false\nexport_cell: false\ncheck_all_cell: false\ninit_cell: true\n"),
			cell("markdown", "# Homework 1", nil),
			raw("# BEGIN QUESTION\nname: q1\npoints: 2\n"),
			cell("markdown", "Write `add`.", nil),
			cell("code", "def add(a, b):\n    return a + b # SOLUTION\n", nil),
			raw("# BEGIN TESTS"),
			cell("code", "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n", nil),
			raw("# END TESTS"),
			raw("# END QUESTION"),
			raw("# BEGIN QUESTION\nname: q2\npoints: 1\n"),
			cell("markdown", "Write `mul`.", nil),
			cell("code", "def mul(a, b):\n    return a * b # SOLUTION\n", nil),
			raw("# BEGIN TESTS"),
			cell("code", "assert mul(2, 3) == 6\n", nil),
			raw("# END TESTS"),
			raw("# END QUESTION"),
		), 0o644)
		graderCmd(t, home, dir, env["OTTER"], "assign", "hw1.ipynb", "dist")
		student, err := os.ReadFile(filepath.Join(dir, "dist", "student", "hw1.ipynb"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range graderStudents {
			nb := student
			for _, fn := range []string{"add", "mul"} {
				nb = []byte(fillIn(t, nb, func(src string, _ map[string]any) bool {
					return strings.HasPrefix(strings.TrimSpace(src), "def "+fn+"(")
				}, extractDef(answers[s], fn)))
			}
			mustWrite(t, filepath.Join(dir, "submissions", s+".ipynb"), string(nb), 0o644)
		}
	})

	step(t, "2 grade with otter run (no Docker) into final_grades.csv", func(t *testing.T) {
		script := filepath.Join(dir, "otter_grade.py")
		mustWrite(t, script, otterGrade, 0o644)
		zips, _ := filepath.Glob(filepath.Join(dir, "dist", "autograder", "hw1-autograder_*.zip"))
		if len(zips) != 1 {
			t.Fatalf("otter assign made %d autograder zips, want 1: %v", len(zips), zips)
		}
		args := []string{script, zips[0], csvFile}
		for _, s := range graderStudents {
			args = append(args, filepath.Join(dir, "submissions", s+".ipynb"))
		}
		graderCmd(t, home, dir, env["GRADER_PYTHON"], args...)
		b, _ := os.ReadFile(csvFile)
		t.Logf("final_grades.csv:\n%s", b)
	})

	want := map[string]float64{}
	step(t, "3 compute each score from final_grades.csv", func(t *testing.T) {
		f, err := os.Open(csvFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil || len(rows) < 2 {
			t.Fatalf("final_grades.csv: %v (%d rows)", err, len(rows))
		}
		col := map[string]int{}
		for i, h := range rows[0] {
			col[h] = i
		}
		for _, k := range []string{"file", "q1", "q2", "total_points_earned", "percent_correct", "grading_status"} {
			if _, ok := col[k]; !ok {
				t.Fatalf("final_grades.csv has no %q column: %v", k, rows[0])
			}
		}
		num := func(r []string, k string) float64 {
			v, err := strconv.ParseFloat(r[col[k]], 64)
			if err != nil {
				t.Fatalf("final_grades.csv %s=%q: %v", k, r[col[k]], err)
			}
			return v
		}
		var possible float64
		for _, r := range rows[1:] {
			if r[col["file"]] == "points-per-question" {
				possible = num(r, "q1") + num(r, "q2")
			}
		}
		if possible != 3 {
			t.Fatalf("points-per-question row sums to %g, want 3", possible)
		}
		for _, r := range rows[1:] {
			user, ok := strings.CutSuffix(r[col["file"]], ".ipynb")
			if !ok || sourced[user] == "" {
				continue
			}
			if r[col["grading_status"]] != "Completed" {
				t.Fatalf("%s: grading_status %q", user, r[col["grading_status"]])
			}
			earned := num(r, "q1") + num(r, "q2")
			// otter-grader 6.1.6 writes percent_correct as a FRACTION
			// (GradingResults.percent = total / possible, rounded to 4
			// places), not 0-100 as field notes section 7 assumes.
			if !close4(earned, num(r, "total_points_earned")) || !close4(earned/possible, num(r, "percent_correct")) {
				t.Errorf("%s: questions sum to %g of %g but the CSV says total %s, percent %s", user, earned, possible,
					r[col["total_points_earned"]], r[col["percent_correct"]])
			}
			want[sourced[user]] = earned / possible
			t.Logf("%s: %g / %g = %.4f", user, earned, possible, earned/possible)
		}
		if len(want) != 2 || want[sourced["alice"]] != 1 || !close4(want[sourced["bob"]], 2.0/3) {
			t.Fatalf("otter graded %v; the course expects alice 1 and bob 2/3", want)
		}
	})

	step(t, "4 ltigrade otter push sends each score to the LMS", func(t *testing.T) {
		out := w.e.ltigrade("otter", "push", csvFile, "--notebook", "hw1/hw1.ipynb", "--user-from", "{username}.ipynb", "--json")
		t.Logf("ltigrade otter push --json:\n%s", out)
		got := w.lmsGrades(t)
		for _, s := range graderStudents {
			g, ok := got[sourced[s]]
			if !ok || !close4(g, want[sourced[s]]) {
				t.Errorf("%s: the LMS holds %v (present %v), want %.4f from final_grades.csv", s, g, ok, want[sourced[s]])
			}
		}
	})
	t.Logf("otter end to end: %s", time.Since(start).Round(time.Millisecond))
}

// extractDef returns the "def fn(...)" block of src.
func extractDef(src, fn string) string {
	i := strings.Index(src, "def "+fn+"(")
	rest := src[i:]
	if j := strings.Index(rest[1:], "\ndef "); j >= 0 {
		rest = rest[:j+2]
	}
	return rest
}
