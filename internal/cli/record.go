package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/spool"
	"github.com/ltigrade/ltigrade/internal/termsafe"
)

// printWarnings passes a parsed launch's warnings to stderr, where the hub
// hook logs them.
func printWarnings(app *App, ws []string) {
	for _, w := range ws {
		fmt.Fprintf(app.Err, "ltigrade: warning: %s\n", termsafe.Field(w))
	}
}

// maxLaunchBytes bounds what record reads; launch.Parse rejects more.
const maxLaunchBytes = 1 << 20

func newRecordCmd(app *App) *cobra.Command {
	var asJSON, fromSpool bool
	cmd := &cobra.Command{
		Use:   "record [FILE|-] | --spool",
		Short: "Record one LTI launch (the JupyterHub hook runs this on every login)",
		Long: `Record one LTI launch read as JSON from FILE or standard input:

  {"username": "alice",
   "auth_state": {...what ltiauthenticator returned: LTI 1.1 launch params or LTI 1.3 claims...},
   "consumer_key": "course-key",
   "next_url": "/hub/user-redirect/git-pull?repo=...&urlpath=...",
   "launched_at": "2026-11-25T10:00:00Z"}

username and auth_state are required; consumer_key is required for LTI 1.1;
next_url falls back to auth_state "next", then "custom_next"; launched_at
defaults to now. The newest launch of a (consumer or issuer, LTI user,
resource link) becomes that session's current launch.

Malformed input exits with 2 and stores nothing.

With --spool it reads no input but records the launches the JupyterHub hook
spooled (hub.spool_dir) because ltigrade failed or was slow at login; ` + "`ltigrade sync`" + `
does the same before sending scores. Invalid spooled launches are moved to
the spool's failed/ folder and kept, each named in a warning; the others are
recorded, then record --spool exits with 2 (sync only warns).`,
		Example: `  ltigrade record launch.json
  echo '{"username":"alice","consumer_key":"k","auth_state":{...}}' | ltigrade record -
  ltigrade record --spool`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if fromSpool {
				if len(a) > 0 {
					return usageErr("--spool reads the spool directory, not %s", a[0])
				}
				return runIngest(app, asJSON)
			}
			src := "-"
			if len(a) == 1 {
				src = a[0]
			}
			return runRecord(app, src, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the stored session (with --spool: the counts) as JSON")
	cmd.Flags().BoolVar(&fromSpool, "spool", false, "record the launches the JupyterHub hook spooled instead of reading one")
	return cmd
}

// readInput reads FILE or standard input ("-"), at most limit bytes: more
// is refused (exit 2), never cut, since a cut batch would send a truncated
// last score and drop the rows after it.
func readInput(app *App, src string, limit int64) ([]byte, error) {
	var r io.Reader = app.In
	name := "standard input"
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return nil, usageErr("%v", err)
		}
		defer f.Close()
		r, name = f, src
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, usageErr("read %s: %v", src, err)
	}
	if int64(len(data)) > limit {
		return nil, usageErr("%s is larger than %d MiB; nothing was journaled", name, limit>>20)
	}
	return data, nil
}

func runRecord(app *App, src string, asJSON bool) error {
	data, err := readInput(app, src, maxLaunchBytes)
	if err != nil {
		return err
	}
	l, err := launch.Parse(data, app.Now())
	if err != nil {
		return err
	}
	cfg, err := app.Config()
	if err != nil {
		return err
	}
	st, err := app.Store()
	if err != nil {
		return err
	}
	printWarnings(app, l.Warnings)
	sl := l.StoreLaunch(cfg.Paths.NbgitpullerParent)
	sl.RecordedAt = app.Now()
	sess, err := st.RecordLaunch(app.Context(), sl)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(app.Out, sessionJSON(sess))
	}
	where := "no nbgitpuller link"
	if sess.PullError != "" {
		where = "nbgitpuller link refused"
	}
	if sess.Checkout != "" {
		where = "checkout " + sess.Checkout
		if sess.Opened != "" {
			where += ", opened " + sess.Opened
		}
	}
	_, err = fmt.Fprintf(app.Out, "recorded launch %d (session %d) for %s: %s (%s)\n",
		sl.ID, sess.ID, termsafe.Field(sess.Username), termsafe.Field(dash(sess.ResourceLinkTitle)), termsafe.Field(where))
	return err
}

// spoolOut is the --json shape of `record --spool`.
type spoolOut struct {
	SpoolDir string `json:"spool_dir"`
	spool.Stats
}

func runIngest(app *App, asJSON bool) error {
	// The hub hook runs this in the background after logins: it should
	// yield the CPU to the hub answering them. Best effort.
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, 0, 10)
	cfg, err := app.Config()
	if err != nil {
		return err
	}
	g, err := app.Local()
	if err != nil {
		return err
	}
	st, err := g.IngestSpool(app.Context())
	if err != nil {
		return err
	}
	if asJSON {
		err = printJSON(app.Out, spoolOut{SpoolDir: cfg.Hub.SpoolDir, Stats: st})
	} else {
		_, err = fmt.Fprintln(app.Out, spoolSummary(cfg.Hub.SpoolDir, st))
	}
	if err != nil {
		return err
	}
	return spoolFailed(cfg.Hub.SpoolDir, st)
}

// spoolFailed is the exit of `record --spool` after it moved launches to
// failed/: invalid input (2), so the hub hook and cron mail show it.
// `sync` only warns: its exit code is about scores.
func spoolFailed(dir string, st spool.Stats) error {
	if st.Failed == 0 {
		return nil
	}
	return withCode(ExitUsage, fmt.Errorf("%d invalid spooled launch%s moved to %s%c",
		st.Failed, plural(st.Failed, "es"), filepath.Join(dir, spool.FailedDir), filepath.Separator),
		"the warnings above say why; the files are kept there for you to read")
}

func spoolSummary(dir string, st spool.Stats) string {
	s := fmt.Sprintf("ingested %d spooled launch%s from %s", st.Ingested, plural(st.Ingested, "es"), dash(dir))
	if st.Failed > 0 {
		s += fmt.Sprintf(", moved %d invalid to %s/", st.Failed, spool.FailedDir)
	}
	if st.Skipped > 0 {
		s += fmt.Sprintf(", left %d of other users", st.Skipped)
	}
	return s
}

func plural(n int, suffix string) string {
	if n == 1 {
		return ""
	}
	return suffix
}
