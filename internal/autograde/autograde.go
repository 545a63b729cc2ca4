// Package autograde grades one submitted notebook on the server with the
// course's grader (otter-grader, nbgrader, or a command of its own) inside
// the sandbox (package sandbox), and reads the score the grader gives.
//
// What the grader prints is the student's code's business too: it runs in
// the same sandbox. So a score is taken only from where the grader, not the
// notebook, speaks last: the final line of the grader's output (after the
// notebook's own prints, which come first), or for nbgrader its gradebook.
// A notebook that attacks the grader inside its own kernel can still lie
// about its score; docs/sandbox.md says what that means.
package autograde

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/grader/nbgrader"
	"github.com/ltigrade/ltigrade/internal/sandbox"
)

// Job is one submission to grade.
type Job struct {
	Grader   config.Grader
	Limits   config.Submit
	Notebook []byte // the submitted .ipynb
	Name     string // its file name, e.g. hw1.ipynb
}

// Outcome is the grade, or why there is none.
type Outcome struct {
	Score, OutOf float64
	// Failed says there is no score; Reason says why in a line, Output is
	// the grader's output tail for the student and the instructor.
	Failed bool
	Reason string
	Output string
	// Duration of the grading in the sandbox.
	Duration time.Duration
}

// Runner runs a sandbox (sandbox.Run; tests may stub it).
type Runner func(ctx context.Context, s sandbox.Spec) (*sandbox.Result, error)

// MaxCourseFiles bounds what an nbgrader course folder may hold.
const MaxCourseFiles = 2000

// Grade grades the job. An error is a sandbox that could not be set up
// (the job may be retried); a grader that failed is an Outcome.
func Grade(ctx context.Context, run Runner, j Job) (*Outcome, error) {
	name := path.Base(strings.ReplaceAll(j.Name, "\\", "/"))
	if name == "." || name == "/" || name == "" || !strings.HasSuffix(name, ".ipynb") {
		name = "submission.ipynb"
	}
	spec := sandbox.Spec{
		User: j.Limits.SandboxUser,
		Env: []string{"PATH=" + pathFor(j.Grader.Python) + "/usr/local/bin:/usr/bin:/bin", "HOME={dir}", "TMPDIR=/tmp",
			"LANG=C.UTF-8", "MPLBACKEND=Agg", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"},
		Limits: sandbox.Limits{Wall: j.Grader.Timeout, CPU: j.Limits.CPU, Memory: j.Limits.MemoryMB << 20,
			Processes: j.Limits.Processes, Disk: j.Limits.DiskMB << 20, FileSize: j.Limits.DiskMB << 20,
			Output: j.Limits.OutputKB << 10},
	}
	py := j.Grader.Python
	if py == "" {
		py = "python3"
	}
	if j.Grader.Kind != "command" || j.Grader.Python != "" {
		// The grader's Python (a venv, TLJH's /opt/tljh/user) may live
		// outside the paths every sandbox sees.
		spec.ReadOnly = append(spec.ReadOnly, pythonPrefixes(ctx, py)...)
	}
	var collectGradebook bool
	switch j.Grader.Kind {
	case "otter":
		spec.Files = []sandbox.File{{Name: name, Data: j.Notebook}, {Name: "autograder.zip", Source: j.Grader.Autograder}}
		spec.Argv = []string{py, "-c", otterScript, "{dir}/" + name, "{dir}/autograder.zip"}
	case "nbgrader":
		assignment := j.Grader.NbgraderAssignment
		files, err := courseFiles(j.Grader.Autograder, assignment)
		if err != nil {
			return nil, err
		}
		if assignment == "" {
			return nil, errors.New("autograde: nbgrader_assignment is not set and cannot be guessed")
		}
		spec.Files = append(files,
			sandbox.File{Name: "nbgrader_config.py", Data: []byte(nbgraderConfig)},
			sandbox.File{Name: "submitted/student/" + assignment + "/" + name, Data: j.Notebook})
		spec.Argv = []string{"sh", "-c", `"$0" -m nbgrader generate_assignment "$1" --force --log-level=ERROR >/dev/null &&
"$0" -m nbgrader autograde "$1" --student student --force --log-level=WARN`, py, assignment}
		spec.Collect = []string{"gradebook.db"}
		collectGradebook = true
	case "command":
		spec.Files = []sandbox.File{{Name: name, Data: j.Notebook}}
		auto := ""
		if j.Grader.Autograder != "" {
			if fi, err := os.Stat(j.Grader.Autograder); err == nil && fi.Mode().IsRegular() {
				base := filepath.Base(j.Grader.Autograder)
				spec.Files = append(spec.Files, sandbox.File{Name: "autograder/" + base, Source: j.Grader.Autograder})
				auto = "{dir}/autograder/" + base
			} else {
				auto = j.Grader.Autograder // a folder, shown read-only
				spec.ReadOnly = append(spec.ReadOnly, auto)
			}
		}
		for _, a := range j.Grader.Command {
			a = strings.ReplaceAll(a, "{notebook}", "{dir}/"+name)
			a = strings.ReplaceAll(a, "{autograder}", auto)
			spec.Argv = append(spec.Argv, a)
		}
	default:
		return nil, fmt.Errorf("autograde: unknown grader kind %q", j.Grader.Kind)
	}
	res, err := run(ctx, spec)
	if err != nil {
		return nil, err
	}
	out := &Outcome{Duration: res.Duration, Output: tailText(res)}
	if collectGradebook {
		return fromGradebook(ctx, res, j.Grader.NbgraderAssignment, out), nil
	}
	if res.TimedOut || res.Signal != "" || res.ExitCode != 0 {
		out.Failed, out.Reason = true, "the grader stopped: "+res.Summary()
		return out, nil
	}
	sc, max, err := lastScoreLine(res.Stdout)
	if err != nil {
		out.Failed, out.Reason = true, err.Error()
		return out, nil
	}
	out.Score, out.OutOf = sc, max
	return out, nil
}

var prefixes sync.Map // python → []string

// pythonPrefixes are sys.prefix and sys.base_prefix of an interpreter
// outside the system paths, asked once (with the service's rights).
func pythonPrefixes(ctx context.Context, py string) []string {
	if v, ok := prefixes.Load(py); ok {
		return v.([]string)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-I", "-c", "import sys; print(sys.prefix); print(sys.base_prefix)").Output()
	if err != nil {
		return nil // the grading then fails with the interpreter's own error
	}
	var ps []string
	for _, p := range strings.Fields(string(out)) {
		if !underSystem(p) && !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	prefixes.Store(py, ps)
	return ps
}

func underSystem(p string) bool {
	for _, s := range sandbox.SystemPaths {
		if p == s || strings.HasPrefix(p, s+"/") {
			return true
		}
	}
	return false
}

func pathFor(py string) string {
	if strings.Contains(py, "/") {
		return filepath.Dir(py) + ":"
	}
	return ""
}

// otterScript runs otter's own grading (otter run's library entry point)
// and prints the result as the last line.
const otterScript = `import json, sys
import otter.run
r = otter.run.main(sys.argv[1], autograder=sys.argv[2], output_dir=None, no_logo=True)
sys.stdout.flush()
if r.has_catastrophic_failure():
    print(json.dumps({"error": "otter could not grade the notebook"}))
    sys.exit(3)
# The notebook ran in this interpreter: end before any exit handler or
# thread of its own can print after the score.
sys.stdout.write("\n" + json.dumps({"score": r.total, "out_of": r.possible}) + "\n")
sys.stdout.flush()
import os
os._exit(0)
`

// nbgraderConfig keeps nbgrader inside the working directory.
const nbgraderConfig = `c = get_config()
c.CourseDirectory.root = "."
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
c.Execute.timeout = 600
`

// lastScoreLine reads {"score": x, "out_of": y} at the very end of the
// output: the last object of the last line (a notebook's output without a
// final newline may share the line). Anything the notebook printed comes
// before it; a notebook that prints after the grader has spoken (an exit
// handler) leaves no score at the end, which is a failure, not a score.
func lastScoreLine(stdout []byte) (float64, float64, error) {
	lines := bytes.Split(bytes.TrimRight(stdout, " \t\r\n"), []byte("\n"))
	last := bytes.TrimSpace(lines[len(lines)-1])
	if i := bytes.LastIndexByte(last, '{'); i > 0 {
		last = last[i:]
	}
	var v struct {
		Score *float64 `json:"score"`
		OutOf *float64 `json:"out_of"`
	}
	if len(last) == 0 || last[0] != '{' || json.Unmarshal(last, &v) != nil || v.Score == nil {
		return 0, 0, errors.New(`the grader printed no score line ({"score": x, "out_of": y}) last`)
	}
	max := 1.0
	if v.OutOf != nil {
		max = *v.OutOf
	}
	switch {
	case math.IsNaN(*v.Score) || math.IsInf(*v.Score, 0) || math.IsNaN(max) || math.IsInf(max, 0):
		return 0, 0, errors.New("the grader's score is not a number")
	case max <= 0:
		return 0, 0, fmt.Errorf("the grader's out_of %g is not positive", max)
	case *v.Score < 0 || *v.Score > max:
		return 0, 0, fmt.Errorf("the grader's score %g is outside 0..%g", *v.Score, max)
	}
	return *v.Score, max, nil
}

func fromGradebook(ctx context.Context, res *sandbox.Result, assignment string, out *Outcome) *Outcome {
	db, ok := res.Files["gradebook.db"]
	if !ok || res.TimedOut || res.Signal != "" || res.ExitCode != 0 {
		out.Failed, out.Reason = true, "nbgrader stopped: "+res.Summary()
		return out
	}
	f, err := os.CreateTemp("", "ltigrade-gradebook-*.db")
	if err != nil {
		out.Failed, out.Reason = true, "cannot read the gradebook: "+err.Error()
		return out
	}
	defer os.Remove(f.Name())
	f.Write(db)
	f.Close()
	a, err := nbgrader.Read(ctx, f.Name(), assignment)
	if err != nil || len(a.Submissions) != 1 || a.MaxScore <= 0 {
		out.Failed, out.Reason = true, fmt.Sprintf("nbgrader left no graded submission (%v)", err)
		return out
	}
	s := a.Submissions[0]
	if s.NeedsManualGrade {
		out.Failed, out.Reason = true, "the notebook needs manual grading"
		return out
	}
	out.Score, out.OutOf = math.Max(0, s.Score), a.MaxScore
	return out
}

// courseFiles copies an nbgrader course's source/<assignment>/ folder.
func courseFiles(root, assignment string) ([]sandbox.File, error) {
	var files []sandbox.File
	src := filepath.Join(root, "source", assignment)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != src {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, sandbox.File{Name: filepath.ToSlash(rel), Source: p})
		if len(files) > MaxCourseFiles {
			return fmt.Errorf("more than %d files", MaxCourseFiles)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("autograde: nbgrader course %s: %w", src, err)
	}
	return files, nil
}

func tailText(r *sandbox.Result) string {
	t := string(bytes.ToValidUTF8(append(append([]byte{}, r.Stdout...), r.Stderr...), []byte("?")))
	const max = 8 << 10
	if len(t) > max {
		t = "…" + t[len(t)-max:]
	}
	return t
}
