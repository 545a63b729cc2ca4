package cli

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/batch"
	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/store"
	"github.com/ltigrade/ltigrade/internal/termsafe"
)

func newScoreCmd(app *App) *cobra.Command {
	var o struct {
		user, comment, batch string
		lineitem, resourceID string
		course               string
		launch               int64
		outOf                float64
		dryRun               bool
		asJSON               bool
		concurrency          int
	}
	cmd := &cobra.Command{
		Use:   "score NOTEBOOK SCORE",
		Short: "Send a notebook's score to the LMS (journaled first, retried until delivered)",
		Long: `Send SCORE for NOTEBOOK to the LMS assignment the notebook was launched from.

SCORE is a fraction (0.85), a percentage (85%) or points over a maximum (17/20, or
17 with --out-of 20). The score is written to ltigrade's journal before anything is
sent; then one attempt is made (with at most a short retry within passback.timeout).
If the LMS cannot be reached, or the consumer's secret (LTI 1.3: the key) cannot be read
right now (say its file mode is too loose), the score stays queued and ` + "`ltigrade sync`" + `
delivers it later. For each session the LMS always ends with the newest score.

With --batch FILE, every row (CSV with a header username,notebook,score[,out_of,comment],
or JSON lines with those keys) is resolved, all sendable rows are journaled in one
transaction, then sent with --concurrency at once; a host that answers with a rate limit
gets no more rows in this run (they stay queued for sync). A malformed row refuses the
whole batch (exit 2, nothing written). A summary goes to stderr; --json prints one
result per row.

Exit codes: 0 delivered, 3 no session, 4 ambiguous, 5 queued for retry,
6 rejected by the LMS, 2 invalid score or input. With --batch: 0 when every row was
sent (or superseded), else the most serious of 6, 4, 3, 5.`,
		Example: `  ltigrade score /home/jupyter-alice/materials/hw1/hw1.ipynb 0.85
  ltigrade score --batch grades.csv --json
  ltigrade score --user alice materials/hw1/hw1.ipynb 17/20 --comment "well done"
  ltigrade score --launch 42 hw1.ipynb 85% --dry-run --json`,
		Args: func(cmd *cobra.Command, a []string) error {
			if o.batch != "" {
				return args(cobra.NoArgs)(cmd, a)
			}
			return args(cobra.ExactArgs(2))(cmd, a)
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			if o.batch != "" {
				if o.user != "" || o.launch != 0 || o.outOf != 0 || o.comment != "" {
					return usageErr("--batch takes user, out_of and comment from its rows; drop --user, --launch, --out-of and --comment")
				}
				data, err := readInput(app, o.batch, batch.MaxInput)
				if err != nil {
					return err
				}
				rows, err := batch.Read(bytes.NewReader(data))
				if err != nil {
					return withCode(ExitUsage, err, "columns: username,notebook,score[,out_of,comment] (CSV with a header, or JSON lines)")
				}
				return runBatch(app, rows, batchOptions{DryRun: o.dryRun, JSON: o.asJSON, Concurrency: o.concurrency})
			}
			g, err := app.Grader()
			if err != nil {
				return err
			}
			res, err := g.Score(app.Context(), grade.ScoreRequest{Notebook: a[0], User: o.user, Cwd: app.cwd(),
				Launch: o.launch, Score: a[1], OutOf: o.outOf, Comment: o.comment, DryRun: o.dryRun,
				LineItem: o.lineitem, ResourceID: o.resourceID, Course: o.course})
			if err != nil {
				return err
			}
			app.printNotices(res.Warnings)
			if o.asJSON {
				if err := printJSON(app.Out, res); err != nil {
					return err
				}
			} else {
				printScore(app, res)
			}
			return exitWith(res.Code())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.user, "user", "", "JupyterHub user; NOTEBOOK is then inside their notebook root")
	fl.Int64Var(&o.launch, "launch", 0, "send to this launch id (from ltigrade sessions list --all) instead of resolving NOTEBOOK")
	fl.Float64Var(&o.outOf, "out-of", 0, "SCORE is points out of this maximum")
	fl.StringVar(&o.comment, "comment", "", "comment for the student (sent where the LMS accepts it: Canvas resultData text)")
	fl.BoolVar(&o.dryRun, "dry-run", false, "resolve and validate, print what would be sent, send and store nothing")
	fl.BoolVar(&o.asJSON, "json", false, "print JSON (with --batch: a summary and one result per row)")
	fl.StringVar(&o.batch, "batch", "", "send many scores: CSV (username,notebook,score[,out_of,comment]) or JSON lines from FILE, - for stdin")
	fl.IntVar(&o.concurrency, "concurrency", 0, "with --batch: scores in flight at once (default passback.concurrency)")
	fl.StringVar(&o.lineitem, "lineitem", "", "send to this gradebook column (LTI 1.3 line item URL) for the notebook's student, found on the roster")
	fl.StringVar(&o.resourceID, "resource-id", "", "send to the course's gradebook column with this resource id (see ltigrade lineitems)")
	fl.StringVar(&o.course, "course", "", "with --lineitem/--resource-id: the course, when the student's launches do not tell")
	return cmd
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// printScore is the text form of a score's result.
func printScore(app *App, r *grade.ScoreResult) {
	p := r.Passback
	user := termsafe.Field(p.Username)
	if r.Resolved != nil && r.Resolved.Via == "roster" {
		fmt.Fprintf(app.Err, "resolved via roster: %s never launched %q; the score goes to its line item for their LMS id\n",
			user, termsafe.Field(r.Resolved.Match.Session.Assignment()))
	}
	if r.DryRun {
		d := r.Request
		if p.Protocol == "ags" {
			fmt.Fprintf(app.Out, "dry run: would post %s/%s for %s to %s (issuer %s, user %s)\n",
				fmtFloat(p.ScoreGiven), fmtFloat(p.ScoreMax), user, termsafe.Field(d.URL), termsafe.Field(p.ConsumerKey), termsafe.Field(p.SourcedID))
			return
		}
		fmt.Fprintf(app.Out, "dry run: would send %s for %s to %s (consumer %s, sourcedid %s)\n",
			p.Score, user, termsafe.Field(p.TargetURL), termsafe.Field(p.ConsumerKey), termsafe.Field(p.SourcedID))
		return
	}
	switch p.Status {
	case store.StatusSent:
		fmt.Fprintf(app.Out, "sent %s for %s (passback %d)\n", p.Score, user, p.ID)
	case store.StatusRejected:
		fmt.Fprintf(app.Out, "rejected: the LMS refused %s for %s (passback %d): %s\n", p.Score, user, p.ID, termsafe.Field(p.LastError))
	case store.StatusSuperseded:
		if passback.PlatformSuperseded(p) {
			fmt.Fprintf(app.Out, "superseded: the platform already holds a newer score for %s; it refused %s (passback %d) as older\n", user, p.Score, p.ID)
			return
		}
		fmt.Fprintf(app.Out, "superseded: a newer score for %s was journaled meanwhile; %s (passback %d) will not be sent\n", user, p.Score, p.ID)
	default:
		why := p.LastError
		if p.Attempts == 0 {
			why = "an earlier score of this session may still be in flight at the LMS"
		}
		when := ""
		// A row due at once (a local failure) waits only for sync.
		if p.NextAttemptAt != nil && p.NextAttemptAt.After(app.Now()) {
			when = ", next try after " + app.fmtTime(*p.NextAttemptAt)
		}
		fmt.Fprintf(app.Out, "queued: %s for %s is journaled as passback %d but not delivered yet (%s%s); `ltigrade sync` will deliver it\n",
			p.Score, user, p.ID, termsafe.Field(dash(why)), when)
	}
}
