package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/store"
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

	// idleConns, if set, is the keep-alive connections per LMS host a
	// batch needs (its --concurrency).
	idleConns int

	configFlag string
	dbFlag     string
	cfg        *config.Config
	st         store.Store
	ctx        context.Context
}

// NewApp returns an App on the process's streams and environment.
func NewApp() *App {
	return &App{
		In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
		Getenv:   os.Getenv,
		Now:      time.Now,
		OutIsTTY: isatty.IsTerminal(os.Stdout.Fd()),
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
	st, err := store.OpenSQLite(cfg.Database)
	if err != nil {
		return nil, err
	}
	for _, w := range st.Warnings() {
		fmt.Fprintf(a.Err, "ltigrade: warning: %s\n", w)
	}
	a.st = st
	return st, nil
}

// Close releases the store.
func (a *App) Close() {
	if a.st != nil {
		a.st.Close()
		a.st = nil
	}
}
