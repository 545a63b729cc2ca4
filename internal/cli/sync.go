package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/spool"
)

func newSyncCmd(app *App) *cobra.Command {
	var now, asJSON bool
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Send every queued score that is due (run it from cron)",
		Long: `Send every queued score whose retry time has come, and re-send scores left in flight
by a process that died. Safe to run from several places at once: each score is
claimed by one sender at a time.

First it records the launches the JupyterHub hook spooled (as ` + "`ltigrade record --spool`" + `
does), so run it as the hub's user (root on TLJH) to empty the spool. A spool it
cannot read is a warning, not an error.

Exit codes: 0 when nothing is left to deliver, 6 when the LMS rejected a score
in this run, 5 when scores are still queued (for retry later, or waiting behind an
earlier attempt whose outcome is unknown).`,
		Example: `  ltigrade sync
  ltigrade sync --now      # the LMS is back: ignore the retry backoff
  */5 * * * * ltigrade sync >/dev/null`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			app.manyQueries = true
			g, err := app.Grader()
			if err != nil {
				return err
			}
			rep, err := g.Sync(app.Context(), grade.SyncRequest{Now: now})
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(app.Out, rep); err != nil {
					return err
				}
				return exitWith(rep.Code())
			}
			if rep.Ingested > 0 || rep.SpoolFailed > 0 {
				fmt.Fprintln(app.Out, spoolSummary(rep.SpoolDir, spool.Stats{Ingested: rep.Ingested, Failed: rep.SpoolFailed}))
			}
			fmt.Fprintf(app.Out, "sent %d, rejected %d, queued for retry %d\n", rep.Sent, rep.Rejected, rep.Retry)
			if rep.StillQueued > rep.Retry {
				fmt.Fprintf(app.Out, "%d score%s still queued in all (see `ltigrade passbacks list --status queued`)\n", rep.StillQueued, plural(rep.StillQueued, "s"))
			}
			return exitWith(rep.Code())
		},
	}
	cmd.Flags().BoolVar(&now, "now", false, "ignore retry backoff: try every queued score now")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
