package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/importer"
	"github.com/ltigrade/ltigrade/internal/store"
)

func newImportCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import sessions recorded by the tools ltigrade replaces",
	}
	cmd.AddCommand(newImportLTIPassParamsCmd(app))
	return cmd
}

type importFlags struct {
	asJSON, dryRun bool
	launchedAt     string
	usernameKey    string
}

func newImportLTIPassParamsCmd(app *App) *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "ltipassparams FILE",
		Short: "Import the sessions of ltipassparams (lti_sessions.sqlite)",
		Long: `Import the sessions that ltipassparams kept in lti_sessions.sqlite (in the hub's
working directory: /opt/tljh/state on older TLJH, /var/lib/jupyterhub on newer), so
its users' notebooks resolve and their scores can be sent without a new launch.

Each row becomes one launch, converted exactly like a launch from the hub hook
(` + "`ltigrade record`" + `): lti_params is the launch's auth_state, oauth_consumer_key its
consumer key, and the nbgitpuller link in custom_next (else next) gives the
checkout and notebook. ltipassparams did not store the hub username; it is rebuilt
as ltiauthenticator chose it: the value of --username-key (its username_key,
default custom_canvas_user_id) if present, else user_id, lower-cased.

ltipassparams did not record when a launch happened either: every imported launch
gets the file's modification time, or --launched-at. A later launch at the hub
replaces an imported one as the session's current launch.

The file is opened read-only. All rows are written in one transaction. Rows that
cannot be converted are listed with the reason and not imported; the command then
exits with 2 after importing the others. Every imported launch carries a digest of
its row in auth_state (ltigrade_import), so importing the same file again skips
the rows already imported, and a row that changed since imports as a new launch.`,
		Example: `  ltigrade import ltipassparams /opt/tljh/state/lti_sessions.sqlite --dry-run
  ltigrade import ltipassparams lti_sessions.sqlite --launched-at 2025-03-01T09:00:00Z
  ltigrade import ltipassparams lti_sessions.sqlite --username-key lis_person_contact_email_primary --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error { return runImportLTIPassParams(app, a[0], f) },
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	fl.BoolVar(&f.dryRun, "dry-run", false, "convert and check every row, write nothing")
	fl.StringVar(&f.launchedAt, "launched-at", "", "launch time of the imported launches, RFC 3339 or YYYY-MM-DD (default: the file's modification time)")
	fl.StringVar(&f.usernameKey, "username-key", importer.DefaultUsernameKey, "launch parameter the hub took usernames from (ltiauthenticator's username_key); user_id when it is empty")
	return cmd
}

type importedOut struct {
	Row       int64  `json:"row"`
	LaunchID  int64  `json:"launch_id,omitempty"`
	SessionID int64  `json:"session_id,omitempty"`
	Username  string `json:"username"`
	Consumer  string `json:"consumer_key"`
	LTIUserID string `json:"lti_user_id"`
	Link      string `json:"resource_link_id"`
	Checkout  string `json:"checkout"`
	Opened    string `json:"opened"`
}

type importReport struct {
	File       string             `json:"file"`
	DryRun     bool               `json:"dry_run"`
	LaunchedAt time.Time          `json:"launched_at"`
	Rows       int                `json:"rows"`
	Imported   []importedOut      `json:"imported"`
	Skipped    []importer.Problem `json:"skipped"`
	Refused    []importer.Problem `json:"refused"`
	Warnings   []importer.Problem `json:"warnings"`
}

func parseLaunchedAt(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr("--launched-at %q: use an RFC 3339 time such as 2025-03-01T09:00:00Z, or a date", s)
}

func runImportLTIPassParams(app *App, file string, f importFlags) error {
	var at time.Time
	var err error
	if f.launchedAt != "" {
		if at, err = parseLaunchedAt(f.launchedAt); err != nil {
			return err
		}
		if at.After(app.Now().Add(time.Minute)) {
			return usageErr("--launched-at %s is in the future", at.Format(time.RFC3339))
		}
	}
	cfg, err := app.Config()
	if err != nil {
		return err
	}
	if at.IsZero() {
		if at, err = importer.ModTime(file); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the file is named below
			}
			return usageErr("%s: %v", file, err)
		}
	}
	// Launch times are stored to the second (RFC 3339 in the launch JSON).
	at = at.Truncate(time.Second)
	ctx := app.Context()
	res, err := importer.ReadLTIPassParams(ctx, file, importer.Options{LaunchedAt: at, UsernameKey: f.usernameKey})
	var fe *importer.FileError
	if errors.As(err, &fe) {
		return usageErr("%v", err)
	}
	if err != nil {
		return err
	}
	st, err := app.Store()
	if err != nil {
		return err
	}
	rep := importReport{File: file, DryRun: f.dryRun, LaunchedAt: at.UTC(), Rows: res.Total,
		Imported: []importedOut{}, Skipped: append([]importer.Problem{}, res.Skipped...),
		Refused: append([]importer.Problem{}, res.Refused...), Warnings: []importer.Problem{}}
	done, err := importedMarkers(ctx, st, res.Rows)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, c := range cfg.LTI11.Consumers {
		known[c.Key] = true
	}
	warnedKey := map[string]bool{}
	var batch []*store.Launch
	var rows []importer.Row
	for _, r := range res.Rows {
		if id, ok := done[r.Marker]; ok {
			rep.Skipped = append(rep.Skipped, importer.Problem{Row: r.ID, Reason: fmt.Sprintf("already imported (launch %d)", id)})
			continue
		}
		for _, w := range r.Warnings {
			rep.Warnings = append(rep.Warnings, importer.Problem{Row: r.ID, Reason: w})
		}
		if k := r.Launch.Platform; !known[k] && !warnedKey[k] {
			warnedKey[k] = true
			rep.Warnings = append(rep.Warnings, importer.Problem{Row: r.ID, Reason: fmt.Sprintf(
				"consumer key %q is not in [[lti11.consumers]]: scores for its sessions cannot be sent until it is", k)})
		}
		sl := r.Launch.StoreLaunch(cfg.Paths.NbgitpullerParent)
		sl.RecordedAt = app.Now()
		batch = append(batch, sl)
		rows = append(rows, r)
	}
	if !f.dryRun && len(batch) > 0 {
		bulk, ok := st.(interface {
			RecordLaunches(context.Context, []*store.Launch) error
		})
		if !ok {
			return errors.New("import: this store cannot record launches in one transaction")
		}
		if err := bulk.RecordLaunches(ctx, batch); err != nil {
			return err
		}
	}
	sessions := map[int64]bool{}
	for i, sl := range batch {
		rep.Imported = append(rep.Imported, importedOut{Row: rows[i].ID, LaunchID: sl.ID, SessionID: sl.SessionID,
			Username: sl.Username, Consumer: sl.Platform, LTIUserID: sl.LTIUserID, Link: sl.ResourceLinkID,
			Checkout: sl.Checkout, Opened: sl.Opened})
		sessions[sl.SessionID] = true
	}
	sort.Slice(rep.Skipped, func(i, j int) bool { return rep.Skipped[i].Row < rep.Skipped[j].Row })

	if f.asJSON {
		if err := printJSON(app.Out, rep); err != nil {
			return err
		}
	} else {
		// Reasons quote every value taken from the file (%q), so a hostile
		// row cannot smuggle terminal escapes into this output.
		for _, p := range rep.Warnings {
			fmt.Fprintf(app.Out, "row %d: warning: %s\n", p.Row, p.Reason)
		}
		for _, p := range rep.Skipped {
			fmt.Fprintf(app.Out, "row %d: skipped: %s\n", p.Row, p.Reason)
		}
		for _, p := range rep.Refused {
			fmt.Fprintf(app.Out, "row %d: refused: %s\n", p.Row, p.Reason)
		}
		verb := "imported"
		if f.dryRun {
			verb = "would import"
		}
		line := fmt.Sprintf("%s %d of %d row%s from %s as launches at %s", verb, len(rep.Imported), rep.Rows, plural(rep.Rows, "s"), file, at.UTC().Format(time.RFC3339))
		if !f.dryRun {
			line += fmt.Sprintf(" (%d session%s)", len(sessions), plural(len(sessions), "s"))
		}
		fmt.Fprintf(app.Out, "%s; %d skipped, %d refused\n", line, len(rep.Skipped), len(rep.Refused))
	}
	if len(rep.Refused) > 0 {
		if !f.asJSON {
			what := fmt.Sprintf("%d rows of %s were", len(rep.Refused), file)
			if len(rep.Refused) == 1 {
				what = "1 row of " + file + " was"
			}
			fmt.Fprintf(app.Err, "ltigrade: %s refused (listed above) and not imported\n", what)
		}
		return &silentExit{code: ExitUsage}
	}
	return nil
}

// importedMarkers finds launches already imported from these rows: the
// users' launches whose auth_state carries an import marker. Rows map to
// users deterministically, so looking at their users suffices.
func importedMarkers(ctx context.Context, st store.Store, rows []importer.Row) (map[string]int64, error) {
	done := map[string]int64{}
	users := map[string]bool{}
	for _, r := range rows {
		users[r.Launch.Username] = true
	}
	for u := range users {
		ls, err := st.ListSessions(ctx, store.SessionFilter{Username: u, All: true})
		if err != nil {
			return nil, err
		}
		for _, l := range ls {
			if m := importer.Marker(l.AuthState); m != "" {
				done[m] = l.LaunchID
			}
		}
	}
	return done, nil
}
