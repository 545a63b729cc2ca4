package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/store"
)

// syncOut is the --json shape of sync: the passback counts, then the
// spooled launches recorded and moved to failed/.
type syncOut struct {
	passback.Stats
	Ingested    int `json:"ingested"`
	SpoolFailed int `json:"spool_failed"`
	// StillQueued counts scores not delivered after this run (backoff not
	// yet over, or waiting behind an earlier attempt): exit code 5.
	StillQueued int `json:"still_queued"`
}

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
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			st, err := app.Store()
			if err != nil {
				return err
			}
			sender, err := app.sender()
			if err != nil {
				return err
			}
			eng := &passback.Engine{Store: st, Timeout: cfg.Passback.Timeout, Concurrency: cfg.Passback.Concurrency, Now: app.Now, Sender: sender}
			// Spooled launches first: a score may need one to find its
			// session. Their problems must not hold back queued scores.
			ingested, err := ingestSpool(app)
			reportSpoolFailures(app, ingested)
			if err != nil {
				fmt.Fprintf(app.Err, "ltigrade: warning: spooled launches not ingested: %v\n", err)
			}
			stats, err := eng.Drain(app.Context(), now)
			if err != nil {
				return err
			}
			left, err := st.ListPassbacks(app.Context(), store.PassbackFilter{
				Statuses: []string{store.StatusPending, store.StatusSending, store.StatusRetry}})
			if err != nil {
				return err
			}
			if asJSON {
				err = printJSON(app.Out, syncOut{Stats: stats, Ingested: ingested.Ingested, SpoolFailed: ingested.Failed, StillQueued: len(left)})
			} else {
				if ingested.Ingested > 0 || ingested.Failed > 0 {
					fmt.Fprintln(app.Out, spoolSummary(cfg.Hub.SpoolDir, ingested))
				}
				_, err = fmt.Fprintf(app.Out, "sent %d, rejected %d, queued for retry %d\n", stats.Sent, stats.Rejected, stats.Retry)
				if err == nil && len(left) > stats.Retry {
					_, err = fmt.Fprintf(app.Out, "%d score%s still queued in all (see `ltigrade passbacks list --status queued`)\n", len(left), plural(len(left), "s"))
				}
			}
			if err != nil {
				return err
			}
			switch {
			case stats.Rejected > 0:
				return &silentExit{code: ExitRejected}
			case stats.Retry > 0 || len(left) > 0:
				return &silentExit{code: ExitQueued}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&now, "now", false, "ignore retry backoff: try every queued score now")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
