// Package hub renders and installs ltigrade's JupyterHub hook: a config
// snippet (hook.py, embedded) that records every LTI launch with
// `ltigrade record`, spools launches it could not record, and gives user
// servers LTI_* variables from `ltigrade env`.
package hub

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

//go:embed hook.py
var hookPy []byte

//go:embed service.py
var servicePy []byte

// DefaultServiceURL is where the managed grading service listens.
const DefaultServiceURL = "http://127.0.0.1:10101"

// DefaultConfigDir is where The Littlest JupyterHub loads config snippets
// from (its jupyterhub_config.py runs load_subconfig on each *.py there).
const DefaultConfigDir = "/opt/tljh/config/jupyterhub_config.d"

// FileName is the snippet's name inside the config directory.
const FileName = "ltigrade.py"

// MaxTimeout bounds the record timeout, as config.Hub.RecordTimeout does:
// the hub holds a login for at most this long.
const MaxTimeout = time.Minute

// Options are the values the snippet is rendered with.
type Options struct {
	Binary   string        // absolute path of the ltigrade binary the hub runs
	Config   string        // absolute config file passed with --config; "" for none
	Database string        // absolute database passed with --db; "" to let the config decide
	SpoolDir string        // absolute spool directory; "" when the store has none (the launch is then only logged)
	Timeout  time.Duration // how long a login may wait for ltigrade, (0, MaxTimeout]
	// Version is the ltigrade version writing the hook, kept in it so that
	// `ltigrade doctor` can tell a hook left behind by an older release.
	Version string
	// Service, if set, adds the grading service (`ltigrade serve`) as a
	// hub-managed service and the role users need to reach it.
	Service *ServiceOptions
}

// ServiceOptions are the managed service's name (its URL is
// /services/<name>/) and the loopback URL it listens on.
type ServiceOptions struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Render returns the hook snippet for o. Every value becomes a Python
// string literal written as JSON (a JSON string is a valid Python string
// literal), and paths that could break out of one line or be changed by
// the encoding (newlines, NUL, invalid UTF-8) are refused.
func Render(o Options) ([]byte, error) {
	if err := checkPath("ltigrade binary", o.Binary, true); err != nil {
		return nil, err
	}
	for _, p := range []struct{ what, v string }{{"config file", o.Config}, {"database", o.Database}, {"spool directory", o.SpoolDir}} {
		if err := checkPath(p.what, p.v, false); err != nil {
			return nil, err
		}
	}
	if o.Timeout <= 0 || o.Timeout > MaxTimeout {
		return nil, fmt.Errorf("hub: record timeout %s must be between 0 and %s", o.Timeout, MaxTimeout)
	}
	args := []string{}
	if o.Config != "" {
		args = append(args, "--config", o.Config)
	}
	if o.Database != "" {
		args = append(args, "--db", o.Database)
	}
	out := hookPy
	vars := []struct {
		name  string
		value any
	}{
		{"LTIGRADE", o.Binary},
		{"LTIGRADE_ARGS", args},
		{"LTIGRADE_SPOOL_DIR", o.SpoolDir},
		{"LTIGRADE_TIMEOUT", json.Number(strconv.FormatFloat(o.Timeout.Seconds(), 'f', -1, 64))},
		{"LTIGRADE_VERSION", o.Version},
	}
	if o.Service != nil {
		if err := checkService(o.Service); err != nil {
			return nil, err
		}
		out = append(append([]byte{}, out...), servicePy...)
		vars = append(vars, struct {
			name  string
			value any
		}{"LTIGRADE_SERVICE_NAME", o.Service.Name}, struct {
			name  string
			value any
		}{"LTIGRADE_SERVICE_URL", o.Service.URL})
	}
	for _, v := range vars {
		lit, err := json.Marshal(v.value)
		if err != nil {
			return nil, fmt.Errorf("hub: %s: %w", v.name, err)
		}
		if out, err = setLine(out, v.name, lit); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var serviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func checkService(s *ServiceOptions) error {
	if !serviceName.MatchString(s.Name) {
		return fmt.Errorf("hub: service name %q: want lowercase letters, digits, - and _", s.Name)
	}
	u, err := url.Parse(s.URL)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("hub: service URL %q: want http://HOST:PORT (the hub proxies to it)", s.URL)
	}
	return nil
}

// setLine replaces the one line "NAME = ..." of the snippet.
func setLine(src []byte, name string, lit []byte) ([]byte, error) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` = .*$`)
	if n := len(re.FindAllIndex(src, -1)); n != 1 {
		// hook.py and this renderer have drifted apart; a test catches it.
		return nil, fmt.Errorf("hub: hook.py has %d lines assigning %s, want 1", n, name)
	}
	line := append([]byte(name+" = "), lit...)
	return re.ReplaceAllLiteral(src, line), nil
}

func checkPath(what, p string, required bool) error {
	switch {
	case p == "":
		if required {
			return fmt.Errorf("hub: no %s path", what)
		}
		return nil
	case strings.ContainsAny(p, "\x00\n\r"):
		return fmt.Errorf("hub: %s path %q contains a newline or NUL byte", what, p)
	case !utf8.ValidString(p):
		return fmt.Errorf("hub: %s path %q is not valid UTF-8", what, p)
	case !filepath.IsAbs(p):
		return fmt.Errorf("hub: %s path %q is not absolute; the hub runs in its own working directory", what, p)
	}
	return nil
}

// Install writes snippet to dir/ltigrade.py (mode 0644: the hub reads it,
// only root changes it) through a temporary file and a rename, so the hub
// never loads half a file. It leaves an identical file alone and says
// whether it changed anything.
func Install(dir string, snippet []byte) (path string, changed bool, err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("hub: config directory %s does not exist; is The Littlest JupyterHub installed? (name another with --config-dir)", dir)
	case err != nil:
		return "", false, fmt.Errorf("hub: %w", err)
	case !fi.IsDir():
		return "", false, fmt.Errorf("hub: %s is not a directory", dir)
	}
	path = filepath.Join(dir, FileName)
	if cur, err := os.Lstat(path); err == nil && cur.Mode().IsRegular() && cur.Mode().Perm() == 0o644 {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, snippet) {
			return path, false, nil
		}
	}
	// The temporary name does not end in .py: the hub must not load it.
	tmp, err := os.CreateTemp(dir, "."+FileName+".*.tmp")
	if err != nil {
		return "", false, fmt.Errorf("hub: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	_, err = tmp.Write(snippet)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return "", false, fmt.Errorf("hub: writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the rename durable; not all filesystems support it
		d.Close()
	}
	return path, true, nil
}

// Installed is what an installed hook runs, read back from its filled-in
// lines: `ltigrade doctor` compares it with the binary and config in use.
type Installed struct {
	Binary   string
	Config   string // the --config it passes; "" for none
	Database string // the --db it passes; "" for none
	SpoolDir string
	Version  string // "" for a hook written before the version was kept
	Service  bool   // it also runs the grading service
}

// ParseInstalled reads the values Render filled into a snippet. Each is a
// JSON literal on a line of its own, so no Python is needed; a line that
// is missing or not JSON means the file was not written by `hub install`
// (or was edited), which is an error.
func ParseInstalled(src []byte) (Installed, error) {
	var in Installed
	var args []string
	for _, v := range []struct {
		name     string
		into     any
		optional bool
	}{
		{"LTIGRADE", &in.Binary, false},
		{"LTIGRADE_ARGS", &args, false},
		{"LTIGRADE_SPOOL_DIR", &in.SpoolDir, false},
		{"LTIGRADE_VERSION", &in.Version, true},
	} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(v.name) + ` = (.*)$`)
		m := re.FindAllSubmatch(src, -1)
		switch {
		case len(m) == 0 && v.optional:
			continue
		case len(m) != 1:
			return in, fmt.Errorf("hub: the snippet has %d lines assigning %s, want 1", len(m), v.name)
		}
		if err := json.Unmarshal(m[0][1], v.into); err != nil {
			return in, fmt.Errorf("hub: the snippet's %s is not what ltigrade writes: %v", v.name, err)
		}
	}
	for i := 0; i < len(args); i++ {
		if i+1 == len(args) {
			return in, fmt.Errorf("hub: the snippet's LTIGRADE_ARGS end with %q and no value", args[i])
		}
		switch args[i] {
		case "--config":
			in.Config = args[i+1]
		case "--db":
			in.Database = args[i+1]
		default:
			return in, fmt.Errorf("hub: the snippet's LTIGRADE_ARGS hold %q, which ltigrade does not write", args[i])
		}
		i++
	}
	in.Service = regexp.MustCompile(`(?m)^LTIGRADE_SERVICE_NAME = `).Match(src)
	return in, nil
}
