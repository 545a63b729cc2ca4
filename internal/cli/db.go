package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/store"
)

func newDBCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage the database: schema migrations, status, copying a SQLite store into PostgreSQL",
		Long: `Manage the database ltigrade stores launches, sessions and the score outbox in: the
SQLite file of a single hub, or a PostgreSQL database (database = "postgres://...")
shared by the hub, graders, cron jobs and the grading service on several hosts.

Every command brings the schema up to date when it opens the database, so
` + "`db migrate`" + ` is only needed to do so at a chosen moment (before a release is rolled
out to every host, say).`,
	}
	cmd.AddCommand(newDBMigrateCmd(app), newDBStatusCmd(app), newDBCopyCmd(app))
	return cmd
}

// dbStatusOut is the --json shape of db status and db migrate.
type dbStatusOut struct {
	store.SchemaStatus
	UpToDate bool `json:"up_to_date"`
	// MigratedFrom is the version before `db migrate` (db migrate only).
	MigratedFrom *int `json:"migrated_from,omitempty"`
}

func (a *App) migrator(migrate bool) (store.Migrator, func(), error) {
	cfg, err := a.Config()
	if err != nil {
		return nil, nil, err
	}
	if !store.IsPostgres(cfg.Database) {
		if err := databaseExists(cfg); err != nil {
			return nil, nil, err
		}
	}
	pw, err := cfg.DatabasePassword()
	if err != nil {
		return nil, nil, err
	}
	opts := []store.Option{store.WithPassword(pw)}
	if !migrate {
		opts = append(opts, store.WithoutMigration())
	}
	st, err := store.Open(a.Context(), cfg.Database, opts...)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range st.Warnings() {
		fmt.Fprintf(a.Err, "ltigrade: warning: %s\n", w)
	}
	m, ok := st.(store.Migrator)
	if !ok {
		st.Close()
		return nil, nil, fmt.Errorf("store %T has no schema versions", st)
	}
	return m, func() { st.Close() }, nil
}

func printDBStatus(app *App, out dbStatusOut, asJSON bool) error {
	if asJSON {
		return printJSON(app.Out, out)
	}
	rows := [][]string{
		{"backend", out.Backend},
		{"database", out.Database},
		{"schema", fmt.Sprintf("%d of %d", out.Version, out.Latest)},
	}
	if out.UpToDate {
		for _, r := range []struct {
			k string
			v int64
		}{{"launches", out.Launches}, {"sessions", out.Sessions}, {"passbacks", out.Passbacks}, {"queued", out.Queued}, {"ags_tokens", out.Tokens}} {
			rows = append(rows, []string{r.k, strconv.FormatInt(r.v, 10)})
		}
	}
	if err := app.printTable([]string{"KEY", "VALUE"}, rows); err != nil {
		return err
	}
	if !out.UpToDate && out.Version < out.Latest {
		fmt.Fprintf(app.Err, "ltigrade: warning: %d schema steps not applied yet; `ltigrade db migrate` (or any command) applies them\n", out.Latest-out.Version)
	}
	return nil
}

func newDBStatusCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the database, its schema version and what it holds",
		Long: `Show which database the configuration names (a PostgreSQL URL without its
password), its schema version against the one this ltigrade knows, and how many
launches, sessions and passbacks (queued: not yet delivered) it holds. It does not
migrate. A PostgreSQL database is connected to, so this also checks the URL,
password and TLS settings.`,
		Example: `  ltigrade db status
  ltigrade db status --json | jq .queued`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, done, err := app.migrator(false)
			if err != nil {
				return err
			}
			defer done()
			st, err := m.SchemaStatus(app.Context())
			if err != nil {
				return err
			}
			if st.Version > st.Latest {
				return fmt.Errorf("the database has schema version %d, newer than this ltigrade knows (%d); use a newer ltigrade", st.Version, st.Latest)
			}
			return printDBStatus(app, dbStatusOut{SchemaStatus: st, UpToDate: st.Version == st.Latest}, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newDBMigrateCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the database's schema up to date",
		Long: `Apply the schema steps the database lacks, in one transaction; processes
starting at the same time wait for it. Every other command does the same when it
opens the database, so this is for choosing the moment. A database the size of a
semester migrates in seconds.`,
		Example: `  ltigrade db migrate
  LTIGRADE_DB=postgres://ltigrade@db.example.edu/ltigrade ltigrade db migrate --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, done, err := app.migrator(false)
			if err != nil {
				return err
			}
			defer done()
			before, err := m.SchemaStatus(app.Context())
			if err != nil {
				return err
			}
			st, err := m.Migrate(app.Context())
			if err != nil {
				return err
			}
			from := before.Version
			out := dbStatusOut{SchemaStatus: st, UpToDate: true, MigratedFrom: &from}
			if !asJSON {
				if from == st.Latest {
					fmt.Fprintf(app.Err, "schema already at version %d\n", st.Latest)
				} else {
					fmt.Fprintf(app.Err, "migrated the schema from version %d to %d\n", from, st.Latest)
				}
			}
			return printDBStatus(app, out, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newDBCopyCmd(app *App) *cobra.Command {
	var from string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "copy --from FILE.db",
		Short: "Copy a SQLite store (a TLJH hub's) into the configured PostgreSQL database",
		Long: `Copy everything a SQLite store holds (launches, sessions, course notebooks, the
outbox with its queued scores, the AGS token cache) into the PostgreSQL database
the configuration names, in one transaction. Rows keep their ids, so queued scores
still belong to their sessions and newest-wins ordering is kept.

It is safe to run again: rows copied before are left alone and only missing ones
are added. It commits only when, afterwards, every row of the file is in
PostgreSQL with the same content, and refuses (exit 2, nothing written) a target
that holds different rows under the same ids. Stop the hub's hook, graders and
cron jobs first (or run it again after the switch to pick up late rows), then
point every host at the PostgreSQL URL.`,
		Example: `  sudo ltigrade --db postgres://ltigrade@db.example.edu/ltigrade db copy --from /var/lib/ltigrade/ltigrade.db`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return usageErr("db copy needs --from FILE.db, the SQLite store to copy")
			}
			if store.IsPostgres(from) {
				return usageErr("--from names a PostgreSQL URL; give the path of the SQLite file to copy")
			}
			if _, err := os.Stat(from); err != nil {
				return usageErr("--from %s: %v", from, errors.Unwrap(err))
			}
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			if !store.IsPostgres(cfg.Database) {
				return withCode(ExitUsage, fmt.Errorf("the database to copy into is the SQLite file %s (%s), not PostgreSQL", cfg.Database, databaseOrigin(cfg)),
					"name the PostgreSQL database with --db, $LTIGRADE_DB or database in the config file: postgres://USER@HOST/DBNAME")
			}
			app.manyQueries = true
			st, err := app.Store()
			if err != nil {
				return err
			}
			res, err := store.CopySQLite(app.Context(), from, st)
			if errors.Is(err, store.ErrCopyConflict) {
				return withCode(ExitUsage, err, "copy into an empty database, or into the one an earlier `db copy` of this file filled")
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Out, res)
			}
			var rows [][]string
			for _, t := range res.Tables {
				rows = append(rows, []string{t.Table, strconv.FormatInt(t.Source, 10), strconv.FormatInt(t.Added, 10), strconv.FormatBool(t.Verified)})
			}
			return app.printTable([]string{"TABLE", "ROWS", "ADDED", "VERIFIED"}, rows)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the SQLite store file to copy")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
