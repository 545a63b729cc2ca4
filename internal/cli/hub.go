package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/hub"
)

func newHubCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Connect ltigrade to JupyterHub: print or install the login hook",
		Long: `The hook is a JupyterHub config snippet. On every LTI 1.1 or 1.3 login it writes the
launch to hub.spool_dir and lets the login go on; in the background,
` + "`ltigrade record --spool`" + ` records it, for at most hub.record_timeout (then its
process group is killed). If ltigrade fails or is slow, the launch stays spooled for
the next ` + "`ltigrade sync`" + `; if the spool cannot be written, the hook runs
` + "`ltigrade record -`" + `, in the background too. ltigrade's warnings and errors go to
the hub log. Before a user's server starts it adds the LTI_* variables of
` + "`ltigrade env`" + `. Hooks already configured are kept and run first. It needs neither
enable_auth_state nor JUPYTERHUB_CRYPT_KEY.`,
	}
	cmd.AddCommand(newHubHookCmd(app), newHubInstallCmd(app))
	return cmd
}

func newHubHookCmd(app *App) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "hook",
		Short: "Print the JupyterHub config snippet for this ltigrade and config",
		Long: `Print the JupyterHub config snippet (Python) that ` + "`ltigrade hub install`" + ` writes,
rendered with the absolute path of this ltigrade binary, the config file it loaded
(passed with --config), the spool directory and the record timeout. Paste it into
jupyterhub_config.py, or save it and load it with load_subconfig(path).`,
		Example: `  ltigrade hub hook > /etc/jupyterhub/ltigrade.py
  ltigrade --config /etc/ltigrade/config.toml hub hook --timeout 3s`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			snippet, _, err := renderHook(app, timeout)
			if err != nil {
				return err
			}
			_, err = app.Out.Write(snippet)
			return err
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "longest the hook lets one ltigrade run last (default hub.record_timeout, 5s)")
	return cmd
}

// hubInstallOut is the --json shape of `hub install`.
type hubInstallOut struct {
	Path     string `json:"path"`
	Changed  bool   `json:"changed"`
	Binary   string `json:"binary"`
	Config   string `json:"config"`
	Database string `json:"database,omitempty"` // passed with --db; "" when the config decides
	SpoolDir string `json:"spool_dir"`
	Timeout  string `json:"timeout"`
	// Version is the ltigrade version the hook keeps (LTIGRADE_VERSION).
	Version string `json:"version"`
	// Service is the managed grading service added (with --service).
	Service *hub.ServiceOptions `json:"service,omitempty"`
}

func newHubInstallCmd(app *App) *cobra.Command {
	var timeout time.Duration
	var dir, serviceURL string
	var asJSON, withService bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Write the JupyterHub hook into The Littlest JupyterHub's config directory",
		Long: `Write the snippet of ` + "`ltigrade hub hook`" + ` to DIR/ltigrade.py (default
` + hub.DefaultConfigDir + `, where TLJH loads *.py snippets), atomically and
mode 0644. An identical file is left alone, so it is safe to run again, for
example after moving the binary or changing hub settings. Restart the hub
afterwards: sudo tljh-config reload hub (TLJH) or sudo systemctl restart jupyterhub.`,
		Example: `  sudo ltigrade --config /etc/ltigrade/config.toml hub install
  ltigrade hub install --config-dir /etc/jupyterhub/config.d --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var svc *hub.ServiceOptions
			if withService {
				cfg, err := app.Config()
				if err != nil {
					return err
				}
				svc = &hub.ServiceOptions{Name: cfg.Service.Name, URL: serviceURL}
			}
			snippet, o, err := renderHookWith(app, timeout, svc)
			if err != nil {
				return err
			}
			if dir, err = filepath.Abs(dir); err != nil {
				return err
			}
			path, changed, err := hub.Install(dir, snippet)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Out, hubInstallOut{Path: path, Changed: changed, Binary: o.Binary, Config: o.Config,
					Database: o.Database, SpoolDir: o.SpoolDir, Timeout: o.Timeout.String(), Version: o.Version, Service: o.Service})
			}
			if !changed {
				_, err = fmt.Fprintf(app.Out, "%s is up to date (unchanged)\n", path)
				return err
			}
			_, err = fmt.Fprintf(app.Out, "wrote %s: runs %s with config %s, spools to %s, waits at most %s\n"+
				"restart the hub to load it: sudo tljh-config reload hub (TLJH) or sudo systemctl restart jupyterhub\n",
				path, o.Binary, dash(o.Config), dash(o.SpoolDir), o.Timeout)
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "config-dir", hub.DefaultConfigDir, "JupyterHub config snippet directory")
	cmd.Flags().BoolVar(&withService, "service", false, "also run the grading service (ltigrade serve) as a hub-managed service under /services/ltigrade/, and let users reach it")
	cmd.Flags().StringVar(&serviceURL, "service-url", hub.DefaultServiceURL, "with --service: the loopback URL the service listens on (the hub proxies to it)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "longest the hook lets one ltigrade run last (default hub.record_timeout, 5s)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was written as JSON")
	return cmd
}

// renderHook renders the snippet for this binary and the loaded config.
func renderHook(app *App, timeout time.Duration) ([]byte, hub.Options, error) {
	return renderHookWith(app, timeout, nil)
}

func renderHookWith(app *App, timeout time.Duration, svc *hub.ServiceOptions) ([]byte, hub.Options, error) {
	cfg, err := app.Config()
	if err != nil {
		return nil, hub.Options{}, err
	}
	if timeout == 0 {
		timeout = cfg.Hub.RecordTimeout
	}
	if timeout < 0 || timeout > hub.MaxTimeout {
		return nil, hub.Options{}, usageErr("--timeout %s must be between 0 and %s", timeout, hub.MaxTimeout)
	}
	bin, err := os.Executable()
	if err == nil {
		bin, err = filepath.EvalSymlinks(bin)
	}
	if err != nil {
		return nil, hub.Options{}, fmt.Errorf("cannot find the ltigrade binary: %w", err)
	}
	o := hub.Options{Binary: bin, Config: cfg.Source, Timeout: timeout, Service: svc, Version: version()}
	// The hub runs in its own working directory and environment: a
	// database named by --db or $LTIGRADE_DB must be passed on, absolute.
	for _, s := range cfg.Describe() {
		if s.Key == "database" && (s.Origin == config.OriginFlag || s.Origin == config.OriginEnv) && !strings.Contains(cfg.Database, "://") {
			if o.Database, err = filepath.Abs(cfg.Database); err != nil {
				return nil, hub.Options{}, err
			}
		}
	}
	if cfg.Hub.SpoolDir != "" {
		if o.SpoolDir, err = filepath.Abs(cfg.Hub.SpoolDir); err != nil {
			return nil, hub.Options{}, err
		}
	}
	if o.Database == "" && !filepath.IsAbs(cfg.Database) && !strings.Contains(cfg.Database, "://") {
		fmt.Fprintf(app.Err, "ltigrade: warning: database %q is a relative path; the hub will resolve it from its own working directory\n", cfg.Database)
	}
	if o.SpoolDir == "" {
		fmt.Fprintln(app.Err, "ltigrade: warning: no hub.spool_dir: launches the hook cannot record will only be logged")
	}
	if o.Config == "" {
		fmt.Fprintf(app.Err, "ltigrade: warning: no config file loaded; the hook will use ltigrade's defaults for the hub's user (%s if it exists)\n", config.SystemConfigFile)
	}
	snippet, err := hub.Render(o)
	if err != nil {
		return nil, hub.Options{}, usageErr("%v", err)
	}
	return snippet, o, nil
}
