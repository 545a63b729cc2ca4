// Package cli is ltigrade's command line: cobra commands, flags, output
// formats and the mapping of errors to exit codes. Domain packages under
// internal/ never see cobra.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/termsafe"
)

// Version is stamped by goreleaser (-ldflags "-X ...cli.Version=v1.2.3").
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// Main runs ltigrade with the process's arguments and returns its exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := NewApp()
	app.ctx = ctx
	return Run(app, os.Args[1:])
}

// Run executes one command line against app and returns the exit code;
// tests call it directly.
func Run(app *App, args []string) (code int) {
	defer app.Close()
	// Whatever a command prints, LMS-provided text in it cannot drive the
	// terminal (escapes, bidi overrides); fields are also cleaned where
	// they are formatted, so they cannot add lines.
	app.Out, app.Err = termsafe.Writer(app.Out), termsafe.Writer(app.Err)
	// A bug must not exit 2 (Go's panic status), which callers read as
	// "usage error": report it as the unexpected error it is.
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(app.Err, "ltigrade: internal error: %v\n%s", r, debug.Stack())
			code = ExitError
		}
	}()
	root := NewRoot(app)
	root.SetArgs(args)
	err := root.ExecuteContext(app.Context())
	code, hint := exitCode(err)
	if err != nil {
		var se *silentExit
		if !errors.As(err, &se) {
			msg := err.Error()
			if !strings.HasPrefix(msg, "ltigrade: ") {
				msg = "ltigrade: " + msg
			}
			fmt.Fprintln(app.Err, termsafe.Lines(msg))
			if hint != "" {
				fmt.Fprintf(app.Err, "hint: %s\n", hint)
			}
		}
	}
	return code
}

// NewRoot builds the command tree.
func NewRoot(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "ltigrade",
		Short: "Send Jupyter notebook grades back to the LMS that launched them",
		Long: `ltigrade remembers every LTI launch at a JupyterHub (who, which LMS assignment, where
the grade goes, which folder or notebook nbgitpuller opened), resolves a notebook path
back to its launch, and sends the score to the LMS: journaled before it leaves, retried
until delivered, newest score wins.

Start with ` + "`ltigrade demo`" + ` to see the whole loop against a built-in LMS simulator.`,
		Example: `  ltigrade demo
  ltigrade sessions list --user alice
  ltigrade resolve /home/jupyter-alice/course/hw1/hw1.ipynb
  ltigrade score /home/jupyter-alice/course/hw1/hw1.ipynb 0.85
  ltigrade sync`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(app.Out)
	root.SetErr(app.Err)
	root.SetIn(app.In)
	pf := root.PersistentFlags()
	pf.StringVar(&app.configFlag, "config", "", "config file (env LTIGRADE_CONFIG; default /etc/ltigrade/config.toml, then $XDG_CONFIG_HOME/ltigrade/config.toml)")
	pf.StringVar(&app.dbFlag, "db", "", "database: a SQLite file or a postgres:// URL (env LTIGRADE_DB; config key database)")
	pf.StringVar(&app.serverFlag, "server", "", "grading service URL, e.g. https://hub.example.edu/services/ltigrade/ (env LTIGRADE_URL): grading commands go through it with $LTIGRADE_TOKEN or $JUPYTERHUB_API_TOKEN")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return withCode(ExitUsage, err, fmt.Sprintf("see `%s --help`", c.CommandPath()))
	})
	root.AddCommand(
		newRecordCmd(app),
		group(newSessionsCmd(app)),
		newResolveCmd(app),
		newScoreCmd(app),
		group(newResultCmd(app)),
		group(newPassbacksCmd(app)),
		newSyncCmd(app),
		group(newHubCmd(app)),
		newEnvCmd(app),
		newDemoCmd(app),
		group(newKeysCmd(app)),
		newSandboxCmd(app),
		newSandboxExecCmd(app),
		newServeCmd(app),
		newSubmitCmd(app),
		newRosterCmd(app),
		group(newLineItemsCmd(app)),
		group(newImportCmd(app)),
		group(newNbgraderCmd(app)),
		group(newOtterCmd(app)),
		group(newConfigCmd(app)),
		group(newDBCmd(app)),
		newDoctorCmd(app),
		newGenCmd(app),
		helpTopic("exit-codes", "Exit codes of ltigrade commands", exitCodesText()),
		helpTopic("environment", "Environment variables ltigrade reads", environmentText()),
	)
	return root
}

// noArgsCheck wraps cobra's positional checks so they count as usage errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return withCode(ExitUsage, err, fmt.Sprintf("see `%s --help`", cmd.CommandPath()))
		}
		return nil
	}
}

// group makes a command that only holds subcommands reject unknown ones
// (exit 2) instead of printing help and succeeding.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = func(c *cobra.Command, a []string) error {
		if len(a) > 0 {
			return withCode(ExitUsage, fmt.Errorf("unknown command %q for %q", a[0], c.CommandPath()),
				fmt.Sprintf("see `%s --help`", c.CommandPath()))
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	return cmd
}
