package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/doctor"
	"github.com/ltigrade/ltigrade/internal/hub"
	"github.com/ltigrade/ltigrade/internal/termsafe"
)

// doctorOptions are doctor's flags.
type doctorOptions struct {
	asJSON       bool
	network      bool
	timeout      time.Duration
	hubConfigDir string
	cronFiles    []string
	systemdDir   string
	skip         []string
}

// defaultCronFiles are where system cron entries live.
var defaultCronFiles = []string{"/etc/crontab", "/etc/cron.d/*"}

func newDoctorCmd(app *App) *cobra.Command {
	var o doctorOptions
	cmd := &cobra.Command{
		Use:   "doctor [--network]",
		Short: "Check the whole set-up and say what to fix",
		Long: `Check everything ltigrade needs on this machine and print a checklist, one line per
check (✓ passed, ✗ failed, ! look at it, - skipped), with the fix under each failure:

  config, consumer_secret, platform_key, database_password, hub_api_token
      the config parses, and every secret file it names exists, is mode 600 and holds a value
  database, database_schema, database_writable
      the database opens, is migrated, and this user can write to it (a rolled-back write)
  spool, spool_failed
      the hook's spool is not writable by others and nothing waits in it for more than 10
      minutes; launches refused into failed/
  hub_hook
      the JupyterHub hook is installed, only root can change it, and it runs this binary with
      this config and was written by this version
  sync_timer
      ltigrade-sync.timer is enabled (systemd), or a cron entry runs ` + "`ltigrade sync`" + `

With --network, also each LMS host of the stored LTI 1.1 launches' outcome services and each
LTI 1.3 token endpoint: a TLS handshake verified against the system's CA roots ($SSL_CERT_FILE
names another bundle), an unauthenticated HEAD request (never a score or credential), and its
clock within a minute of ours (the Date header). Hosts are checked at once, each for at most
--timeout.

Run it as the user the hook and the sync timer run as (root on TLJH). It changes nothing
(except that, like any command, opening a SQLite database closes a file others could read). In
a pipe each check is a tab-separated line: status (ok, FAIL, WARN, skip), name, subject, detail,
hint. Exit 0 when no check failed, else 8. Check names, and --json, are in docs/doctor.md.`,
		Example: `  sudo ltigrade doctor
  sudo ltigrade doctor --network
  ltigrade doctor --json | jq '.checks[] | select(.ok | not)'
  ltigrade doctor --hub-config-dir /etc/jupyterhub/config.d --cron-file /var/spool/cron/crontabs/root
  ltigrade doctor --skip sync_timer,hub_hook     # in the service's Kubernetes pod`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.timeout <= 0 {
				return usageErr("--timeout %s must be positive", o.timeout)
			}
			for _, n := range o.skip {
				if !slices.Contains(doctor.Names, n) {
					return usageErr("--skip %q is no check; the checks are %s", n, strings.Join(doctor.Names, ", "))
				}
			}
			return runDoctor(app, o, cmd.Flags().Changed("hub-config-dir"), cmd.Flags().Changed("cron-file"))
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.asJSON, "json", false, "print the checklist as JSON")
	f.BoolVar(&o.network, "network", false, "also check each LMS host and LTI 1.3 token endpoint: TLS, an unauthenticated request, its clock")
	f.DurationVar(&o.timeout, "timeout", doctor.DefaultNetworkTimeout, "with --network: the longest one host's check may take")
	f.StringVar(&o.hubConfigDir, "hub-config-dir", hub.DefaultConfigDir, "the JupyterHub config snippet directory hub install wrote the hook into")
	f.StringArrayVar(&o.cronFiles, "cron-file", nil, "a crontab file (or glob) that may run ltigrade sync (repeatable; default /etc/crontab, /etc/cron.d/* and crontab -l)")
	// Where systemd's runtime directory is: tests point it at a folder of
	// their own; on a real machine it is always /run/systemd/system.
	f.StringVar(&o.systemdDir, "systemd-dir", "/run/systemd/system", "systemd's runtime directory (present when systemd runs)")
	_ = f.MarkHidden("systemd-dir")
	f.StringSliceVar(&o.skip, "skip", nil, "checks that do not apply here, reported as skipped (comma-separated or repeated; e.g. sync_timer,hub_hook in a Kubernetes pod)")
	return cmd
}

func runDoctor(app *App, o doctorOptions, hubDirGiven, cronGiven bool) error {
	cfg, cfgErr := config.Load(config.Options{ConfigFlag: app.configFlag, DBFlag: app.dbFlag, Getenv: app.Getenv})
	bin, err := os.Executable()
	if err == nil {
		bin, err = filepath.EvalSymlinks(bin)
	}
	if err != nil {
		return fmt.Errorf("cannot find the ltigrade binary: %w", err)
	}
	hubDir, err := filepath.Abs(o.hubConfigDir)
	if err != nil {
		return err
	}
	timer := doctor.Timer{
		SystemdDir: o.systemdDir,
		Systemctl: func(ctx context.Context, args ...string) (string, error) {
			out, err := exec.CommandContext(ctx, "systemctl", args...).Output()
			return string(out), err
		},
		CronFiles: o.cronFiles,
	}
	if !cronGiven {
		timer.CronFiles = defaultCronFiles
		timer.Crontab = func(ctx context.Context) (string, error) {
			out, err := exec.CommandContext(ctx, "crontab", "-l").Output()
			return string(out), err
		}
	}
	example := "*/5 * * * * root " + bin
	if cfg != nil && cfg.Source != "" {
		example += " --config " + cfg.Source
	}
	timer.Example = example + " sync"
	rep := doctor.Run(app.Context(), doctor.Setup{
		Config: cfg, ConfigErr: cfgErr,
		Binary: bin, Version: version(),
		HubConfigDir: hubDir, HubConfigDirGiven: hubDirGiven,
		Timer:   timer,
		Network: o.network, NetworkTimeout: o.timeout,
		Now: app.Now, Skip: o.skip,
	})
	if o.asJSON {
		if err := printJSON(app.Out, rep); err != nil {
			return err
		}
	} else if err := printChecklist(app, rep); err != nil {
		return err
	}
	if !rep.OK {
		return exitWith(ExitCheckFailed)
	}
	return nil
}

// printChecklist prints one line per check: ✓/✗ and the hint indented
// under a failure on a terminal, tab-separated fields in a pipe. Details
// hold names from the config, the store and LMS answers: each field is
// made one line without terminal escapes.
func printChecklist(app *App, rep doctor.Report) error {
	if err := printChecks(app, rep.Checks); err != nil {
		return err
	}
	failed, warned := rep.Failed()
	var parts []string
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d checks failed", failed, len(rep.Checks)))
	}
	if warned > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", warned, map[bool]string{true: "warning", false: "warnings"}[warned == 1]))
	}
	if len(parts) > 0 {
		fmt.Fprintf(app.Err, "ltigrade: doctor: %s\n", strings.Join(parts, ", "))
	}
	return nil
}

func printChecks(app *App, checks []doctor.Check) error {
	if !app.OutIsTTY {
		word := map[doctor.Status]string{doctor.StatusOK: "ok", doctor.StatusFail: "FAIL", doctor.StatusWarn: "WARN", doctor.StatusSkip: "skip"}
		var rows [][]string
		for _, c := range checks {
			rows = append(rows, []string{word[c.Status], c.Name, c.Subject, c.Detail, c.Hint})
		}
		return app.printTable(nil, rows)
	}
	mark := map[doctor.Status]string{doctor.StatusOK: "✓", doctor.StatusFail: "✗", doctor.StatusWarn: "!", doctor.StatusSkip: "-"}
	for _, c := range checks {
		name, subject, detail, hint := c.Name, termsafe.Field(c.Subject), termsafe.Field(c.Detail), termsafe.Field(c.Hint)
		if subject != "" {
			name += " " + subject
		}
		if _, err := fmt.Fprintf(app.Out, "%s %s: %s\n", mark[c.Status], name, detail); err != nil {
			return err
		}
		if hint != "" {
			if _, err := fmt.Fprintf(app.Out, "    fix: %s\n", hint); err != nil {
				return err
			}
		}
	}
	return nil
}
