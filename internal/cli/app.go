package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/remote"
	"github.com/ltigrade/ltigrade/internal/store"
	"github.com/ltigrade/ltigrade/internal/termsafe"
)

// App holds what commands share: streams, the clock, and the config and
// store, opened lazily so `ltigrade help` works without either.
type App struct {
	In       io.Reader
	Out, Err io.Writer
	Getenv   func(string) string
	Now      func() time.Time
	// OutIsTTY chooses tables (terminal) over tab-separated lines (pipes).
	OutIsTTY bool
	// ErrIsTTY allows progress bars on stderr.
	ErrIsTTY bool

	// spoolChecked: the hook's spool was caught up with, once per
	// process (a batch resolves many rows).
	spoolChecked bool
	local        *grade.Local

	configFlag string
	serverFlag string
	dbFlag     string
	cfg        *config.Config
	st         store.Store
	ctx        context.Context

	// storeMustExist is set for commands that only read the store (see
	// readsStore): they fail on a database that does not exist instead of
	// creating an empty one and answering "nothing".
	storeMustExist bool
	// manyQueries is set by the commands that make many store calls (serve,
	// sync, batches, db copy): they keep prepared statements; every other
	// command runs its few queries in one round trip each (store.FewQueries).
	manyQueries bool
}

// readsStore marks cmd as one that only reads the store, so it needs an
// existing database. Such a command may still write to it (the AGS token
// cache, launches ingested from the spool): the rule is only that the
// database exists, which is what tells a wrong path from an empty store.
func readsStore(app *App, cmd *cobra.Command) *cobra.Command {
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, a []string) error {
		app.storeMustExist = true
		return run(c, a)
	}
	return cmd
}

// NewApp returns an App on the process's streams and environment.
func NewApp() *App {
	return &App{
		In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
		Getenv:   os.Getenv,
		Now:      time.Now,
		OutIsTTY: isatty.IsTerminal(os.Stdout.Fd()),
		ErrIsTTY: isatty.IsTerminal(os.Stderr.Fd()),
		ctx:      context.Background(),
	}
}

// Context is the context of the running command (cancelled on SIGINT).
func (a *App) Context() context.Context {
	if a.ctx == nil {
		return context.Background()
	}
	return a.ctx
}

// Config loads the configuration once; its warnings go to stderr.
func (a *App) Config() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	cfg, err := config.Load(config.Options{ConfigFlag: a.configFlag, DBFlag: a.dbFlag, Getenv: a.Getenv})
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(a.Err, "ltigrade: warning: %s\n", w)
	}
	a.cfg = cfg
	return cfg, nil
}

// Store opens the configured database once.
func (a *App) Store() (store.Store, error) {
	if a.st != nil {
		return a.st, nil
	}
	cfg, err := a.Config()
	if err != nil {
		return nil, err
	}
	if a.storeMustExist && !store.IsPostgres(cfg.Database) {
		if err := databaseExists(cfg); err != nil {
			return nil, err
		}
	}
	var opts []store.Option
	if !a.manyQueries {
		opts = append(opts, store.FewQueries())
	}
	st, err := openStore(a.Context(), cfg, opts...)
	if err != nil {
		return nil, err
	}
	for _, w := range st.Warnings() {
		fmt.Fprintf(a.Err, "ltigrade: warning: %s\n", w)
	}
	a.st = st
	return st, nil
}

// Local is the grading use cases on this machine's config and store.
func (a *App) Local() (*grade.Local, error) {
	if a.local != nil {
		return a.local, nil
	}
	cfg, err := a.Config()
	if err != nil {
		return nil, err
	}
	st, err := a.Store()
	if err != nil {
		return nil, err
	}
	g := &grade.Local{Store: st, Config: cfg, Now: a.Now, Warn: a.warn}
	g.CatchUp = func(ctx context.Context) {
		if !a.spoolChecked {
			a.spoolChecked = true
			g.CatchUpSpool(ctx)
		}
	}
	a.local = g
	return g, nil
}

// Server is the grading service's URL when the commands go through it
// (--server, else $LTIGRADE_URL).
func (a *App) Server() string {
	if a.serverFlag != "" {
		return a.serverFlag
	}
	return a.Getenv(config.EnvServer)
}

// Grader is where the grading commands go: the grading service when one is
// named (no database or secret needed here), else this machine's store and
// config.
func (a *App) Grader() (grade.Grader, error) {
	if srv := a.Server(); srv != "" {
		token := firstNonEmpty(a.Getenv(config.EnvToken), a.Getenv("JUPYTERHUB_API_TOKEN"))
		return remote.New(srv, token)
	}
	return a.Local()
}

// cwd is the working directory, for relative notebook paths (sent along
// to the service, whose own directory means nothing here).
func (a *App) cwd() string {
	d, err := os.Getwd()
	if err != nil {
		return ""
	}
	return d
}

// warn prints a warning on stderr, where cron mail and the hub log see it.
func (a *App) warn(msg string) {
	fmt.Fprintf(a.Err, "ltigrade: warning: %s\n", termsafe.Field(msg))
}

// printNotices prints a result's warnings and their hints on stderr.
func (a *App) printNotices(ns []grade.Notice) {
	for _, n := range ns {
		a.warn(n.Warning)
		if n.Hint != "" {
			fmt.Fprintf(a.Err, "hint: %s\n", termsafe.Field(n.Hint))
		}
	}
}

// openStore opens the configured database, with the PostgreSQL password
// the config holds apart from the URL (see config.DatabasePassword).
func openStore(ctx context.Context, cfg *config.Config, opts ...store.Option) (store.Store, error) {
	pw, err := cfg.DatabasePassword()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, cfg.Database, append([]store.Option{store.WithPassword(pw)}, opts...)...)
}

// Close releases the store.
func (a *App) Close() {
	if a.st != nil {
		a.st.Close()
		a.st = nil
	}
}

// databaseExists fails (exit 2) when the configured database file does not
// exist, naming it and what chose it: on a hub that is nearly always the
// wrong user's default or a typo, not an empty store. Other errors are left
// to the open, which reports them better.
func databaseExists(cfg *config.Config) error {
	_, err := os.Stat(cfg.Database)
	if !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return withCode(ExitUsage, fmt.Errorf("database %s does not exist (%s)", cfg.Database, databaseOrigin(cfg)),
		"set database in the config file, $"+config.EnvDatabase+" or --db to the database `ltigrade record` writes (it creates it)")
}

// databaseOrigin says what set the database, for errors.
func databaseOrigin(cfg *config.Config) string {
	s, _ := cfg.Setting("database")
	switch s.Origin {
	case config.OriginFlag, config.OriginEnv:
		return "named by " + s.From
	case config.OriginFile:
		return "named by database in " + s.From
	}
	file := cfg.Source
	if file == "" {
		file = "a config file (none was loaded)"
	}
	return "the default; nothing sets --db, $" + config.EnvDatabase + " or database in " + file
}
