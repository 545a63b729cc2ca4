package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/store"
)

func newConfigCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective configuration",
	}
	cmd.AddCommand(newConfigShowCmd(app))
	return cmd
}

// configShowOut is the --json shape of `config show`; its field names are a
// public contract (docs/json.md).
type configShowOut struct {
	Config   configFileOut    `json:"config"`
	Database databaseOut      `json:"database"`
	Settings []config.Setting `json:"settings"`
	Warnings []string         `json:"warnings"`
}

type configFileOut struct {
	File     string        `json:"file"` // "" when none was found
	Origin   config.Origin `json:"origin"`
	From     string        `json:"from"`
	Searched []string      `json:"searched"`
}

type databaseOut struct {
	Value  string        `json:"value"`
	Origin config.Origin `json:"origin"`
	From   string        `json:"from"`
	Exists bool          `json:"exists"`
}

func newConfigShowCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show which config file and database are used, and every setting with its origin",
		Long: `Show the effective configuration: the config file loaded (or the files looked for when
there is none), the database, and every setting with where its value came from:
"flag" (--config, --db), "env" (an LTIGRADE_* variable), "file" (the config file)
or "default".

It answers "which config and database am I using?": run it as the user the hub, cron
or a grader runs ltigrade as. It opens no database and needs none.

Secrets never appear: an inline secret shows as [redacted], secret_file and
secret_env as the file or variable name, and a database URL with its password
hidden. Tab-separated when piped: KEY, VALUE, ORIGIN, FROM ("-" when empty).`,
		Example: `  ltigrade config show
  sudo ltigrade config show               # what the hub (root) uses
  ltigrade config show --json | jq -r .database.value
  ltigrade config show | awk -F'\t' '$3 != "default"'   # only what is set`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			out := describeConfig(cfg)
			if asJSON {
				return printJSON(app.Out, out)
			}
			if !out.Database.Exists {
				fmt.Fprintf(app.Err, "ltigrade: warning: database %s does not exist (yet): commands that only read it fail until `ltigrade record` creates it\n",
					out.Database.Value)
			}
			var rows [][]string
			for _, s := range out.Settings {
				from := s.From
				if s.Key == "config" && s.Origin == config.OriginDefault {
					from = "searched " + strings.Join(out.Config.Searched, ", ")
				}
				rows = append(rows, []string{s.Key, dash(s.Value), string(s.Origin), dash(from)})
			}
			return app.printTable([]string{"KEY", "VALUE", "ORIGIN", "FROM"}, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// describeConfig gathers what `config show` prints. Values come from
// Config.Describe, which has already redacted secrets.
func describeConfig(cfg *config.Config) configShowOut {
	out := configShowOut{Settings: cfg.Describe(), Warnings: cfg.Warnings}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	if s, ok := cfg.Setting("config"); ok {
		out.Config = configFileOut{File: s.Value, Origin: s.Origin, From: s.From}
	}
	out.Config.Searched = cfg.Searched()
	if s, ok := cfg.Setting("database"); ok {
		out.Database = databaseOut{Value: s.Value, Origin: s.Origin, From: s.From}
	}
	// A PostgreSQL database is not checked here (that needs a connection;
	// `ltigrade db status` makes one): it is taken to exist.
	_, err := os.Stat(cfg.Database)
	out.Database.Exists = err == nil || store.IsPostgres(cfg.Database)
	return out
}
