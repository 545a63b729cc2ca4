package cli

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/batch"
	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/grader/nbgrader"
	"github.com/ltigrade/ltigrade/internal/grader/otter"
)

// skipped is a grader row ltigrade deliberately does not send.
type skipped struct {
	line       int
	who, why   string
	unresolved bool // no hub user could be derived: counts as exit 3
}

// pushBatch reports the skipped rows on stderr, sends the others with
// runBatch, and folds "no hub user for a row" into the exit code (3) unless
// the batch already has a more serious one.
func pushBatch(app *App, rows []batch.Row, skips []skipped, o batchOptions) error {
	noUser := 0
	for _, s := range skips {
		fmt.Fprintf(app.Err, "ltigrade: %s: skipped %s: %s\n", o.Label, s.who, s.why)
		if s.unresolved {
			noUser++
		}
	}
	if len(skips) > 0 {
		fmt.Fprintf(app.Err, "%s: %d skipped, not sent\n", o.Label, len(skips))
	}
	err := runBatch(app, rows, o)
	if noUser == 0 {
		return err
	}
	var se *silentExit
	if err == nil || (errors.As(err, &se) && grade.Severity[se.code] < grade.Severity[ExitNoSession]) {
		return &silentExit{code: ExitNoSession}
	}
	return err
}

// points formats a score for batch.Row: plain decimal, never an exponent.
func points(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if len(s) > 32 {
		s = strings.TrimRight(strings.TrimRight(strconv.FormatFloat(v, 'f', 12, 64), "0"), ".")
	}
	return s
}

// relNotebook checks a --notebook value: a path inside each user's notebook
// root, the same for every student.
func relNotebook(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if path.IsAbs(p) || strings.HasPrefix(p, "~") {
		return "", usageErr("--notebook %q must be relative to each student's notebook root (e.g. ps1/ps1.ipynb)", p)
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", usageErr("--notebook %q leaves the notebook root", p)
	}
	return c, nil
}

func newNbgraderCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "nbgrader", Short: "Send nbgrader's scores from its gradebook.db"}
	var o struct {
		gradebook, assignment, notebook, userFrom string
		students                                  []string
		includeUngraded                           bool
		batchOptions
	}
	push := &cobra.Command{
		Use:   "push --gradebook PATH --assignment NAME",
		Short: "Send every submission's score of an nbgrader assignment to the LMS",
		Long: `Read nbgrader's gradebook.db (read-only) and send the score of every submission of
--assignment, computed as nbgrader does: for each graded cell the manual score if set,
else the auto score, plus extra credit; minus the notebooks' late-submission penalties;
over the assignment's maximum (grade cells plus task cells). A score below 0 is sent as
0 and one above the maximum (extra credit) as the maximum, with a warning.

The nbgrader student id is the hub user (--user-from lms_user_id uses the student's
lms_user_id instead). The score goes to the launch that opened --notebook inside that
user's notebook root; the default is <assignment>/<first notebook>.ipynb, where
nbgrader's fetch puts the assignment (the first notebook by name in the gradebook).

Submissions still needing manual grading are skipped and reported unless
--include-ungraded; so are students without an lms_user_id under
--user-from lms_user_id (exit 3). The rows are sent as one batch: see
` + "`ltigrade score --batch`" + ` for the report, --json and the exit codes.`,
		Example: `  nbgrader autograde ps1 && ltigrade nbgrader push --gradebook gradebook.db --assignment ps1
  ltigrade nbgrader push --gradebook gradebook.db --assignment ps1 --student alice --dry-run
  ltigrade nbgrader push --gradebook gradebook.db --assignment ps1 --notebook materials/ps1/ps1.ipynb --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.gradebook == "" || o.assignment == "" {
				return usageErr("--gradebook and --assignment are required")
			}
			if o.userFrom != "student_id" && o.userFrom != "lms_user_id" {
				return usageErr("--user-from must be student_id or lms_user_id, not %q", o.userFrom)
			}
			nb, err := relNotebook(o.notebook)
			if err != nil {
				return err
			}
			a, err := nbgrader.Read(app.Context(), o.gradebook, o.assignment)
			if errors.Is(err, nbgrader.ErrNoAssignment) || errors.Is(err, os.ErrNotExist) {
				return withCode(ExitUsage, err, "check --gradebook and --assignment (nbgrader db assignment list)")
			}
			if err != nil {
				return err
			}
			if nb == "" {
				if len(a.Notebooks) == 0 {
					return usageErr("assignment %q has no notebooks in the gradebook; say which with --notebook", o.assignment)
				}
				nb = path.Join(a.Name, a.Notebooks[0]+".ipynb")
			}
			want, seen := map[string]bool{}, map[string]bool{}
			for _, s := range o.students {
				want[s] = true
			}
			var rows []batch.Row
			var skips []skipped
			for i, s := range a.Submissions {
				if len(want) > 0 && !want[s.StudentID] {
					continue
				}
				seen[s.StudentID] = true
				who := "student " + s.StudentID
				user := s.StudentID
				if o.userFrom == "lms_user_id" {
					user = s.LMSUserID
					if user == "" {
						skips = append(skips, skipped{i + 1, who, "no lms_user_id in the gradebook", true})
						continue
					}
					who += " (" + user + ")"
				}
				switch {
				case s.NeedsManualGrade && !o.includeUngraded:
					skips = append(skips, skipped{line: i + 1, who: who, why: "needs manual grading (--include-ungraded sends it)"})
					continue
				case !(s.MaxScore > 0):
					skips = append(skips, skipped{line: i + 1, who: who, why: "the assignment's maximum score is 0"})
					continue
				}
				sc := s.Score
				if sc < 0 || sc > s.MaxScore {
					sc = math.Min(s.MaxScore, math.Max(0, sc))
					fmt.Fprintf(app.Err, "ltigrade: warning: %s scored %s of %s; sending %s\n", who, points(s.Score), points(s.MaxScore), points(sc))
				}
				rows = append(rows, batch.Row{Line: i + 1, Username: user, Notebook: nb, Score: points(sc), OutOf: s.MaxScore})
			}
			for _, id := range o.students {
				if seen[id] {
					continue
				}
				seen[id] = true
				skips = append(skips, skipped{who: "student " + id, why: fmt.Sprintf("no submission of %s in the gradebook", o.assignment), unresolved: true})
			}
			o.Label = "nbgrader " + o.assignment
			return pushBatch(app, rows, skips, o.batchOptions)
		},
	}
	f := push.Flags()
	f.StringVar(&o.gradebook, "gradebook", "", "nbgrader's gradebook.db (opened read-only)")
	f.StringVar(&o.assignment, "assignment", "", "nbgrader assignment name")
	f.StringSliceVar(&o.students, "student", nil, "only these nbgrader student ids (repeatable)")
	f.StringVar(&o.notebook, "notebook", "", "notebook inside each student's root that the LMS launch opened (default <assignment>/<first notebook>.ipynb)")
	f.StringVar(&o.userFrom, "user-from", "student_id", "hub user from the nbgrader student_id or its lms_user_id")
	f.BoolVar(&o.includeUngraded, "include-ungraded", false, "also send submissions that still need manual grading")
	addBatchFlags(push, &o.batchOptions)
	cmd.AddCommand(push)
	return cmd
}

func addBatchFlags(cmd *cobra.Command, o *batchOptions) {
	f := cmd.Flags()
	f.BoolVar(&o.DryRun, "dry-run", false, "resolve every row and show what would be sent; journal and send nothing")
	f.BoolVar(&o.JSON, "json", false, "print the summary and one result per row as JSON (skipped rows are reported on stderr)")
	f.IntVar(&o.Concurrency, "concurrency", 0, "scores in flight at once (default passback.concurrency)")
}

func newOtterCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "otter", Short: "Send otter-grader's scores from final_grades.csv"}
	var o struct {
		notebook, userFrom string
		batchOptions
	}
	push := &cobra.Command{
		Use:   "push FINAL_GRADES_CSV --notebook PATH",
		Short: "Send the scores of otter grade's final_grades.csv to the LMS",
		Long: `Read the final_grades.csv that ` + "`otter grade`" + ` writes and send each submission's score:
total_points_earned over the points possible (the points-per-question row), else
percent_correct (a ratio, 0-1). Rows whose grading failed (grading_status other than
Completed) are reported, not sent.

otter knows students only by file name: --user-from is a pattern matched against the
whole file column with one {username} placeholder, the rest literal (no globbing);
default {username}.ipynb. otter writes the submission's base name there. Rows that do
not match are reported and make the exit code 3. The score goes to the launch that
opened --notebook inside each user's notebook root. The rows are sent as one batch: see
` + "`ltigrade score --batch`" + ` for the report, --json and the exit codes.`,
		Example: `  otter grade -p submissions -a autograder.zip -o grades && \
    ltigrade otter push grades/final_grades.csv --notebook hw1/hw1.ipynb
  ltigrade otter push final_grades.csv --notebook materials/hw1/hw1.ipynb --user-from 'hw1-{username}.ipynb' --dry-run`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			nb, err := relNotebook(o.notebook)
			if err != nil {
				return err
			}
			if nb == "" {
				return usageErr("--notebook is required: the notebook inside each student's root that the LMS launch opened")
			}
			pat, err := otter.ParsePattern(o.userFrom)
			if err != nil {
				return usageErr("--user-from: %v", err)
			}
			f, err := os.Open(a[0])
			if err != nil {
				return withCode(ExitUsage, err, "")
			}
			defer f.Close()
			parsed, err := otter.Parse(f)
			if err != nil {
				return usageErr("%s: %v", a[0], err)
			}
			var rows []batch.Row
			var skips []skipped
			for _, r := range parsed {
				who := fmt.Sprintf("line %d (%s)", r.Line, r.File)
				if r.Failed != "" {
					skips = append(skips, skipped{line: r.Line, who: who, why: r.Failed})
					continue
				}
				user, ok := pat.Username(r.File)
				if !ok {
					skips = append(skips, skipped{r.Line, who, fmt.Sprintf("file does not match --user-from %s", pat), true})
					continue
				}
				row := batch.Row{Line: r.Line, Username: user, Notebook: nb, Score: points(r.Score)}
				if r.Possible > 0 {
					row.Score, row.OutOf = points(r.Earned), r.Possible
				}
				rows = append(rows, row)
			}
			o.Label = "otter " + a[0]
			return pushBatch(app, rows, skips, o.batchOptions)
		},
	}
	f := push.Flags()
	f.StringVar(&o.notebook, "notebook", "", "notebook inside each student's root that the LMS launch opened (required)")
	f.StringVar(&o.userFrom, "user-from", "{username}.ipynb", "pattern of the file column with one {username}")
	addBatchFlags(push, &o.batchOptions)
	cmd.AddCommand(push)
	return cmd
}
