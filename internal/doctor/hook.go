package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/hub"
	"github.com/ltigrade/ltigrade/internal/store"
)

// CheckHook is check "hub_hook": DIR/ltigrade.py exists, only root (its
// owner) can change it, and it runs this binary with this config, written
// by this version. A hook that runs another binary or config records
// launches somewhere this ltigrade never looks; one from an older release
// may lack what this one expects. Without a JupyterHub config directory
// here (a grader's machine) the check is skipped, unless dir was named.
func CheckHook(dir string, given bool, cfg *config.Config, binary, version string) Check {
	const name = "hub_hook"
	if dir == "" {
		dir = hub.DefaultConfigDir
	}
	install := installCommand(binary, cfg.Source, dir, false)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !given:
		return skipped(name, "no JupyterHub config directory "+dir+" on this machine; name the hub's with --hub-config-dir")
	case errors.Is(err, fs.ErrNotExist):
		return fail(name, "", "JupyterHub config directory "+dir+" does not exist", "name the hub's config snippet directory with --hub-config-dir")
	case err != nil:
		return fail(name, "", err.Error(), "name the hub's config snippet directory with --hub-config-dir")
	case !fi.IsDir():
		return fail(name, "", dir+" is not a directory", "name the hub's config snippet directory with --hub-config-dir")
	}
	path := filepath.Join(dir, hub.FileName)
	fi, err = os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fail(name, "", path+" does not exist: the hub records no launch", install+", then restart the hub")
	case err != nil:
		return fail(name, "", err.Error(), "")
	case !fi.Mode().IsRegular():
		return fail(name, "", path+" is not a regular file", "remove it, then "+install)
	case fi.Mode().Perm()&0o022 != 0:
		// The hub runs the snippet as root: whoever can change it runs code
		// as root and reads every launch.
		return fail(name, "", fmt.Sprintf("%s is writable by group or others (mode %04o): they could run code in the hub", path, fi.Mode().Perm()),
			"chmod 644 "+path)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return fail(name, "", err.Error(), "")
	}
	in, err := hub.ParseInstalled(src)
	if err != nil {
		return fail(name, "", path+": "+err.Error(), install+" (it replaces the file)")
	}
	install = installCommand(binary, cfg.Source, dir, in.Service)
	var problems []string
	if in.Binary != binary {
		p := "runs " + in.Binary + ", not this ltigrade (" + binary + ")"
		if _, err := os.Stat(in.Binary); err != nil {
			p = "runs " + in.Binary + ", which does not exist"
		}
		problems = append(problems, p)
	}
	if in.Config != cfg.Source {
		problems = append(problems, fmt.Sprintf("passes --config %s, but this check loaded %s", orNone(in.Config), orNone(cfg.Source)))
	}
	if in.Database != "" && !store.IsPostgres(in.Database) {
		if abs, err := filepath.Abs(cfg.Database); err == nil && abs != in.Database {
			problems = append(problems, "passes --db "+in.Database+", but the database here is "+cfg.Database)
		}
	}
	switch in.Version {
	case version:
	case "":
		problems = append(problems, "was written by an ltigrade older than "+version+" (it names no version)")
	default:
		problems = append(problems, "was written by ltigrade "+in.Version+", this is "+version)
	}
	if len(problems) > 0 {
		return fail(name, "", path+" "+strings.Join(problems, "; "), install+", then restart the hub (sudo tljh-config reload hub)")
	}
	return ok(name, "", fmt.Sprintf("%s runs this ltigrade (%s) with --config %s", path, version, orNone(in.Config)))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// installCommand is the command that writes the right hook.
func installCommand(binary, cfgFile, dir string, service bool) string {
	cmd := "sudo " + shellQuote(binary)
	if cfgFile != "" {
		cmd += " --config " + shellQuote(cfgFile)
	}
	cmd += " hub install"
	if dir != hub.DefaultConfigDir {
		cmd += " --config-dir " + shellQuote(dir)
	}
	if service {
		cmd += " --service"
	}
	return cmd
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
