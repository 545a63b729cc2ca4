package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/store"
)

// maxLaunchBytes bounds what record reads; launch.Parse rejects more.
const maxLaunchBytes = 1 << 20

func newRecordCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "record [FILE|-]",
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

Malformed input exits with 2 and stores nothing.`,
		Example: `  ltigrade record launch.json
  echo '{"username":"alice","consumer_key":"k","auth_state":{...}}' | ltigrade record -`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			src := "-"
			if len(a) == 1 {
				src = a[0]
			}
			return runRecord(app, src, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the stored session as JSON")
	return cmd
}

func readInput(app *App, src string) ([]byte, error) {
	var r io.Reader = app.In
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return nil, usageErr("%v", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxLaunchBytes+1))
	if err != nil {
		return nil, usageErr("read %s: %v", src, err)
	}
	return data, nil
}

func runRecord(app *App, src string, asJSON bool) error {
	data, err := readInput(app, src)
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
	sl := toStoreLaunch(l, cfg.Paths.NbgitpullerParent)
	sl.RecordedAt = app.Now()
	sess, err := st.RecordLaunch(app.Context(), sl)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(app.Out, sessionJSON(sess))
	}
	where := "no nbgitpuller link"
	if sess.Checkout != "" {
		where = "checkout " + sess.Checkout
		if sess.Opened != "" {
			where += ", opened " + sess.Opened
		}
	}
	_, err = fmt.Fprintf(app.Out, "recorded launch %d (session %d) for %s: %s (%s)\n",
		sl.ID, sess.ID, sess.Username, dash(sess.ResourceLinkTitle), where)
	return err
}

// toStoreLaunch flattens a parsed launch; parent is the hub's
// NBGITPULLER_PARENTPATH, where nbgitpuller puts checkouts.
func toStoreLaunch(l *launch.Launch, parent string) *store.Launch {
	sl := &store.Launch{
		Username: l.Username, Version: l.Version, Platform: l.Platform, ClientID: l.ClientID,
		DeploymentID: l.DeploymentID, LTIUserID: l.LTIUserID, ResourceLinkID: l.ResourceLinkID,
		ResourceLinkTitle: l.ResourceLinkTitle, ContextID: l.ContextID, ContextLabel: l.ContextLabel,
		ContextTitle: l.ContextTitle, Roles: l.Roles, OutcomeURL: l.OutcomeURL, SourcedID: l.SourcedID,
		ResultDataAccepted: l.ResultDataAccepted, SubmittedAtAccepted: l.SubmittedAtAccepted,
		LineItem: l.LineItem, LineItems: l.LineItems, AGSScopes: l.AGSScopes,
		NextURL: l.NextURL, LaunchedAt: l.LaunchedAt, AuthState: l.AuthState,
	}
	if p := l.Pull; p != nil {
		sl.Repo = p.Repo
		sl.Checkout = p.Checkout(parent)
		sl.Opened = p.OpenedPath(parent)
		sl.OpenedFile = p.OpenedFile
	}
	return sl
}
