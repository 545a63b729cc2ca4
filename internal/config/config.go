// Package config loads ltigrade's settings from flags, LTIGRADE_* environment
// variables, a TOML file and built-in defaults, in that order of precedence,
// and resolves them in one place (resolve) so that every command sees the
// same answer and `ltigrade config show` can say where each value came from.
//
// It also owns the LTI consumer secrets: they are read only when asked for,
// handed out as a [Secret] that prints as "[redacted]", and kept out of every
// error message, so no log line or bug report can carry one.
package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/ltigrade/ltigrade/internal/paths"
)

// Environment variables read by Load.
const (
	EnvConfig              = "LTIGRADE_CONFIG"
	EnvDatabase            = "LTIGRADE_DB"
	EnvPassbackConcurrency = "LTIGRADE_PASSBACK_CONCURRENCY"
	EnvPassbackTimeout     = "LTIGRADE_PASSBACK_TIMEOUT"
)

// Built-in locations and defaults.
const (
	// SystemConfigFile is looked for before the per-user file because the
	// hub's hook and the graders' cron jobs must share one configuration.
	SystemConfigFile = "/etc/ltigrade/config.toml"
	// SystemDatabase is the default store when running as root.
	SystemDatabase = "/var/lib/ltigrade/ltigrade.db"

	DefaultConcurrency = 8
	MaxConcurrency     = 256
	DefaultTimeout     = 20 * time.Second
)

// EnvVar describes one environment variable, for `ltigrade help environment`.
type EnvVar struct {
	Name, Help string
}

// Environment lists every LTIGRADE_* variable Load reads.
func Environment() []EnvVar {
	return []EnvVar{
		{EnvConfig, "config file to load instead of " + SystemConfigFile + " or $XDG_CONFIG_HOME/ltigrade/config.toml; it must exist"},
		{EnvDatabase, "database: a SQLite file path or a postgres:// URL; overrides `database` in the config file, overridden by --db"},
		{EnvPassbackConcurrency, fmt.Sprintf("grade passbacks sent at once, 1..%d (default %d)", MaxConcurrency, DefaultConcurrency)},
		{EnvPassbackTimeout, fmt.Sprintf("timeout of one passback request, a Go duration such as 20s (default %s)", DefaultTimeout)},
		{EnvServer, "URL of the grading service (…/services/ltigrade/): sessions list, resolve, score, nbgrader/otter push, passbacks list and sync go through it (--server)"},
		{EnvToken, "hub API token for the grading service; default $JUPYTERHUB_API_TOKEN (which a user's server has)"},
		{"JUPYTERHUB_API_TOKEN", "the hub token for the grading service when $LTIGRADE_TOKEN is unset; for `serve`, the service's own token"},
		{"JUPYTERHUB_SERVICE_URL, _PREFIX, _API_URL, _CLIENT_ID, _OAUTH_CALLBACK_URL", "set by the hub for a managed `ltigrade serve`"},
	}
}

// Environment variables of the remote CLI (the grading service).
const (
	EnvServer = "LTIGRADE_URL"
	EnvToken  = "LTIGRADE_TOKEN"
)

// ErrConfig is wrapped by every error from Load and ConsumerSecret, so the
// CLI can map all configuration problems to one exit code with errors.Is.
var ErrConfig = errors.New("configuration error")

type configError struct {
	err  error
	hint string
}

func (e *configError) Error() string   { return e.err.Error() }
func (e *configError) Unwrap() []error { return []error{ErrConfig, e.err} }

// Hint says how to fix the problem, for the CLI's "hint:" line; "" if the
// message says it all.
func (e *configError) Hint() string { return e.hint }

// errorf builds an error that starts with "config: " and wraps ErrConfig.
// Callers must never pass a secret value among args.
func errorf(format string, args ...any) error {
	return &configError{err: fmt.Errorf("config: "+format, args...)}
}

// hinted is errorf with a hint.
func hinted(hint, format string, args ...any) error {
	return &configError{err: fmt.Errorf("config: "+format, args...), hint: hint}
}

// readableBy names who besides the owner can read a file of this mode.
func readableBy(mode fs.FileMode) string {
	switch {
	case mode&0o044 == 0o044:
		return "group and others"
	case mode&0o040 != 0:
		return "group"
	}
	return "others"
}

// Options are the inputs Load takes from the process. Zero values mean the
// real OS, so production code passes only the flags and tests replace the
// rest.
type Options struct {
	ConfigFlag string // --config; "" if not given
	DBFlag     string // --db; "" if not given
	Getenv     func(string) string
	Geteuid    func() int
	FileExists func(string) bool
}

func (o Options) withDefaults() Options {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Geteuid == nil {
		o.Geteuid = os.Geteuid
	}
	if o.FileExists == nil {
		o.FileExists = func(p string) bool {
			_, err := os.Stat(p)
			return err == nil
		}
	}
	return o
}

// Config is the effective configuration. It holds no secret values: a
// consumer's secret is read by ConsumerSecret when a signature needs it, so a
// rotated secret file takes effect without a restart and printing a Config
// (with %v, %+v or %#v) cannot leak one.
type Config struct {
	// Database is used verbatim, relative paths included: a SQLite file
	// path, or a postgres:// URL (see package store), not a path to fix up.
	Database string
	// DatabasePasswordFile holds the PostgreSQL password when the URL has
	// none; read by DatabasePassword, never kept here.
	DatabasePasswordFile string
	// dbURLPassword is the password the database URL had, taken out of
	// Database; a pointer so that printing a Config shows an address.
	dbURLPassword *string
	Source        string // absolute path of the config file loaded, "" if none
	Paths         Paths
	LTI11         LTI11
	LTI13         LTI13
	Passback      Passback
	Hub           Hub
	Sandbox       Sandbox
	Service       Service
	Graders       []Grader
	Submit        Submit
	// Warnings are problems that do not stop ltigrade, for the CLI to print
	// on stderr; Load itself prints nothing.
	Warnings []string

	settings []Setting
	searched []string
	getenv   func(string) string
}

// Searched lists the config files Load looked for, in order: the one named
// by --config or $LTIGRADE_CONFIG, else the system and the per-user file.
func (c *Config) Searched() []string { return slices.Clone(c.searched) }

// Paths says where users' notebooks live; see package paths.
type Paths struct {
	Home              string   // template of a user's notebook root
	NbgitpullerParent string   // NBGITPULLER_PARENTPATH of the hub, relative to the root; "" if unset
	Patterns          []string // further trees mirroring users' roots
}

// Layout returns the templates in the form package paths works with.
func (p Paths) Layout() paths.Layout {
	return paths.Layout{Home: p.Home, Patterns: slices.Clone(p.Patterns)}
}

// LTI11 holds the LTI 1.1 settings.
type LTI11 struct {
	Consumers []Consumer
}

// Consumer is an LTI 1.1 tool consumer (an LMS) known by its key. Its secret
// is reached only through Config.ConsumerSecret.
type Consumer struct {
	Key string
	// src is a pointer so that fmt, which does not call methods on
	// unexported fields, prints an address rather than its contents.
	src *secretSource
}

// Passback holds the settings of sending grades to the LMS.
type Passback struct {
	Concurrency int
	Timeout     time.Duration
}

// LTI13 holds the LTI 1.3 settings.
type LTI13 struct {
	Platforms []Platform
}

// Platform is an LTI 1.3 platform (an LMS registration) ltigrade sends
// grades to over Assignment and Grade Services.
type Platform struct {
	Issuer   string
	ClientID string
	TokenURL string
	// Audience is the aud of token requests; default TokenURL (Brightspace
	// wants its own).
	Audience string
	// PrivateKeyFile holds the tool's RSA key (PEM, mode 0600); the key is
	// read when a token is requested, never kept in Config.
	PrivateKeyFile string
	// KeyID is the kid of the tool's key; "" means derived from the key.
	KeyID string
	// Canvas forces Canvas's score extension (new_submission: false) for a
	// self-hosted Canvas whose issuer does not name Canvas.
	Canvas bool
	// UsernameKey is the hub's LTI13Authenticator.username_key for this
	// platform (default "email", ltiauthenticator's): how a roster member
	// who never launched maps to a hub user.
	UsernameKey string
}

// Platform finds the platform of a launch by issuer and client id (an
// empty clientID matches a platform with a single registration).
func (c *Config) Platform(issuer, clientID string) (*Platform, error) {
	var found []*Platform
	for i := range c.LTI13.Platforms {
		p := &c.LTI13.Platforms[i]
		if p.Issuer == issuer && (clientID == "" || p.ClientID == clientID) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return nil, errorf("no [[lti13.platforms]] entry for issuer %q and client_id %q in %s", issuer, clientID, dash(c.Source))
	case 1:
		return found[0], nil
	}
	return nil, errorf("several [[lti13.platforms]] entries match issuer %q; the launch has no client_id to choose", issuer)
}

func dash(s string) string {
	if s == "" {
		return "(no config file)"
	}
	return s
}

// Hub holds the settings of the JupyterHub hook.
type Hub struct {
	// SpoolDir is where the hook leaves launches it could not record;
	// default "spool" beside a file database.
	SpoolDir string
	// RecordTimeout bounds how long the hook waits for `ltigrade record`
	// before spooling the launch, so a login is never held longer.
	RecordTimeout time.Duration
	// Env lists the launch fields exported to user servers as LTI_*
	// variables by `ltigrade env`.
	Env []string
}

// DefaultHubEnv are the launch fields user servers get by default: what a
// notebook may want to know about its course and assignment, never secrets
// or grade targets.
var DefaultHubEnv = []string{"context_id", "context_label", "context_title", "resource_link_id", "resource_link_title", "roles"}

// DefaultRecordTimeout is the hook's default wait for `ltigrade record`.
const DefaultRecordTimeout = 5 * time.Second

// Service holds the settings of `ltigrade serve`, the grading service.
// Run by the hub as a managed service, the hub's JUPYTERHUB_* variables
// override the hub fields.
type Service struct {
	// Graders may score anyone and see everything: "group:NAME" (a hub
	// group) or "user:NAME". Hub admins always may; nobody else.
	Graders []string
	// Listen is the address of an external service (Kubernetes), e.g.
	// 0.0.0.0:10101; a managed service listens on JUPYTERHUB_SERVICE_URL.
	Listen string
	// Name is the service's name at the hub (its URL is
	// /services/<name>/); default "ltigrade".
	Name string
	// Prefix is the URL path the service answers under; default
	// /services/<name>/.
	Prefix string
	// HubAPIURL and HubAPITokenFile (or JUPYTERHUB_API_URL and
	// JUPYTERHUB_API_TOKEN) reach the hub's API; the token file must be
	// mode 0600.
	HubAPIURL       string
	HubAPITokenFile string
	// HubPublicURL is where browsers reach the hub, for the OAuth login
	// (default: the same host as the service, i.e. behind the hub's proxy).
	HubPublicURL string
	// MetricsTokenFile holds a bearer token that may read GET metrics
	// without a hub account (a Prometheus scraper); mode 0600 or 0400,
	// like secret files. "" means only hub admins and graders may.
	MetricsTokenFile string
}

// Sandbox holds the settings of `ltigrade sandbox`, the trial LMS.
type Sandbox struct {
	Listen      string // address of its web pages, default 127.0.0.1:8765
	HubURL      string // the hub to launch into, default http://127.0.0.1:8000
	CourseRepo  string // the course repository nbgitpuller links point at
	ConsumerKey string // key it signs with; its secret comes from [[lti11.consumers]]
}

// rawFile is the config file as written. Pointers tell "absent" from "set to
// the zero value", which precedence and validation both need.
type rawFile struct {
	Database             *string `toml:"database"`
	DatabasePasswordFile *string `toml:"database_password_file"`
	Paths                struct {
		Home              *string  `toml:"home"`
		NbgitpullerParent *string  `toml:"nbgitpuller_parent"`
		Patterns          []string `toml:"patterns"`
	} `toml:"paths"`
	LTI11 struct {
		Consumers []rawConsumer `toml:"consumers"`
	} `toml:"lti11"`
	LTI13 struct {
		Platforms []rawPlatform `toml:"platforms"`
	} `toml:"lti13"`
	Passback struct {
		Concurrency *int    `toml:"concurrency"`
		Timeout     *string `toml:"timeout"`
	} `toml:"passback"`
	Hub struct {
		SpoolDir      *string  `toml:"spool_dir"`
		RecordTimeout *string  `toml:"record_timeout"`
		Env           []string `toml:"env"`
	} `toml:"hub"`
	Sandbox struct {
		Listen      *string `toml:"listen"`
		HubURL      *string `toml:"hub_url"`
		CourseRepo  *string `toml:"course_repo"`
		ConsumerKey *string `toml:"consumer_key"`
	} `toml:"sandbox"`
	Service struct {
		Graders         []string `toml:"graders"`
		Listen          *string  `toml:"listen"`
		Name            *string  `toml:"name"`
		Prefix          *string  `toml:"prefix"`
		HubAPIURL       *string  `toml:"hub_api_url"`
		HubAPITokenFile *string  `toml:"hub_api_token_file"`
		HubPublicURL    *string  `toml:"hub_public_url"`
		// MetricsTokenFile: see Service.
		MetricsTokenFile *string `toml:"metrics_token_file"`
	} `toml:"service"`
	Graders []rawGrader `toml:"graders"`
	Submit  rawSubmit   `toml:"submit"`
}

type rawPlatform struct {
	Issuer         *string `toml:"issuer"`
	ClientID       *string `toml:"client_id"`
	TokenURL       *string `toml:"token_url"`
	Audience       *string `toml:"audience"`
	PrivateKeyFile *string `toml:"private_key_file"`
	KeyID          *string `toml:"key_id"`
	Canvas         *bool   `toml:"canvas"`
	UsernameKey    *string `toml:"username_key"`
}

type rawConsumer struct {
	Key        *string `toml:"key"`
	Secret     *string `toml:"secret"`
	SecretFile *string `toml:"secret_file"`
	SecretEnv  *string `toml:"secret_env"`
}

// knownKeys are the keys rawFile accepts, for "did you mean" hints.
var knownKeys = []string{
	"database", "database_password_file",
	"paths.home", "paths.nbgitpuller_parent", "paths.patterns",
	"lti11.consumers.key", "lti11.consumers.secret", "lti11.consumers.secret_file", "lti11.consumers.secret_env",
	"passback.concurrency", "passback.timeout",
	"lti13.platforms.issuer", "lti13.platforms.client_id", "lti13.platforms.token_url",
	"lti13.platforms.audience", "lti13.platforms.private_key_file", "lti13.platforms.key_id", "lti13.platforms.canvas",
	"lti13.platforms.username_key",
	"hub.spool_dir", "hub.record_timeout", "hub.env",
	"sandbox.listen", "sandbox.hub_url", "sandbox.course_repo", "sandbox.consumer_key",
	"service.graders", "service.listen", "service.name", "service.prefix", "service.hub_api_url",
	"service.hub_api_token_file", "service.hub_public_url", "service.metrics_token_file",
	"graders.course", "graders.assignment", "graders.notebooks", "graders.kind", "graders.autograder",
	"graders.nbgrader_assignment", "graders.command", "graders.python", "graders.timeout",
	"submit.max_size_mb", "submit.workers", "submit.queue", "submit.interval", "submit.sandbox_user",
	"submit.memory_mb", "submit.disk_mb", "submit.processes", "submit.cpu", "submit.output_kb",
}

// Load finds, reads and validates the configuration.
func Load(o Options) (*Config, error) {
	o = o.withDefaults()
	file, err := findFile(o)
	if err != nil {
		return nil, err
	}
	raw := &rawFile{}
	var mode fs.FileMode
	if file.path != "" {
		if mode, err = readFile(file, raw); err != nil {
			return nil, err
		}
	}
	c, err := resolve(o, file, raw)
	if err != nil {
		return nil, err
	}
	if file.path != "" && c.hasInlineSecret() && mode&0o044 != 0 {
		// Refused, not warned about: whoever can read the file can forge
		// grades, and a warning in a cron mail nobody reads fixes nothing.
		// A config file meant for the graders' group keeps its secrets in
		// secret_file or secret_env, which this check leaves alone.
		return nil, hinted(
			fmt.Sprintf("chmod 600 %s, or move the secret to secret_file (a file of mode 600) or secret_env", file.path),
			"config file %s holds an inline secret and is readable by %s (mode %04o)", file.path, readableBy(mode), mode)
	}
	if file.path != "" && mode&0o022 != 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf(
			"config file %s is writable by group or others (mode %04o); anyone who can change it can redirect grades",
			file.path, mode))
	}
	return c, nil
}

// fileChoice is the config file Load settled on and why.
type fileChoice struct {
	path     string
	origin   Origin
	from     string // "--config", "$LTIGRADE_CONFIG" or "" when found by searching
	searched []string
	warnings []string
}

func findFile(o Options) (fileChoice, error) {
	if o.ConfigFlag != "" {
		return fileChoice{path: o.ConfigFlag, origin: OriginFlag, from: "--config", searched: []string{o.ConfigFlag}}, nil
	}
	if p := o.Getenv(EnvConfig); p != "" {
		return fileChoice{path: p, origin: OriginEnv, from: "$" + EnvConfig, searched: []string{p}}, nil
	}
	searched := []string{SystemConfigFile}
	var user string
	if dir := xdgDir(o.Getenv, "XDG_CONFIG_HOME", ".config"); dir != "" {
		user = filepath.Join(dir, "ltigrade", "config.toml")
		searched = append(searched, user)
	}
	if o.FileExists(SystemConfigFile) {
		fc := fileChoice{path: SystemConfigFile, origin: OriginDefault, searched: searched}
		if user != "" && o.FileExists(user) {
			fc.warnings = append(fc.warnings, fmt.Sprintf(
				"ignoring %s because %s exists; name it with --config or $%s to use it", user, SystemConfigFile, EnvConfig))
		}
		return fc, nil
	}
	if user != "" && o.FileExists(user) {
		return fileChoice{path: user, origin: OriginDefault, searched: searched}, nil
	}
	return fileChoice{origin: OriginDefault, searched: searched}, nil
}

// xdgDir returns $name, or $HOME/fallback when it is unset. Relative values
// are ignored, as the XDG Base Directory specification requires. It returns
// "" when neither variable helps.
func xdgDir(getenv func(string) string, name, fallback string) string {
	if d := getenv(name); filepath.IsAbs(d) {
		return d
	}
	if home := getenv("HOME"); filepath.IsAbs(home) {
		return filepath.Join(home, fallback)
	}
	return ""
}

// readFile reads and decodes the config file into raw and returns its mode.
func readFile(file fileChoice, raw *rawFile) (fs.FileMode, error) {
	f, err := os.Open(file.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && file.from != "" {
			return 0, errorf("config file %s named by %s does not exist", file.path, file.from)
		}
		return 0, errorf("reading config file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, errorf("reading config file: %w", err)
	}
	if fi.IsDir() {
		return 0, errorf("config file %s is a directory", file.path)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, errorf("reading config file: %w", err)
	}
	md, err := toml.Decode(string(data), raw)
	if err != nil {
		return 0, decodeError(file.path, string(data), err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return 0, errorf("%s: unknown key%s %s", file.path, plural(len(keys)), describeUnknown(keys))
	}
	return fi.Mode().Perm(), nil
}

// decodeError reports a TOML error without risking a secret: the parser
// quotes the token it choked on, and on a line such as `secret = abc123`
// (quotes forgotten) that token is the secret. Such lines get their position
// only.
func decodeError(file, data string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if mentionsSecret(pe.LastKey) || mentionsSecret(lineAt(data, pe.Position.Line)) {
			msg = "syntax error (details withheld because the line may hold a secret)"
		}
		return errorf("%s:%d: invalid TOML: %s", file, pe.Position.Line, msg)
	}
	// Errors other than ParseError name types and keys, never values.
	return errorf("%s: invalid TOML: %s", file, strings.TrimPrefix(err.Error(), "toml: "))
}

func mentionsSecret(s string) bool {
	return strings.Contains(strings.ToLower(s), "secret")
}

func lineAt(data string, n int) string {
	for i, l := range strings.Split(data, "\n") {
		if i+1 == n {
			return l
		}
	}
	return ""
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// describeUnknown lists unknown keys with a "did you mean" hint for each
// near miss, because a typo in a grading tool's config must fail loudly and
// be easy to fix.
func describeUnknown(unknown []string) string {
	parts := make([]string, len(unknown))
	hinted := false
	for i, u := range unknown {
		parts[i] = u
		best, bestD := "", 4
		for _, k := range knownKeys {
			if d := editDistance(u, k); d < bestD {
				best, bestD = k, d
			}
		}
		if best != "" {
			parts[i] += " (did you mean " + best + "?)"
			hinted = true
		}
	}
	s := strings.Join(parts, ", ")
	if !hinted {
		s += "; known keys are " + strings.Join(knownKeys, ", ")
	}
	return s
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// value is one candidate for a setting: a layer that may or may not set it.
type value[T any] struct {
	v      T
	set    bool
	origin Origin
	from   string
}

// first returns the first candidate that is set; candidates come in order of
// precedence.
func first[T any](cands ...value[T]) value[T] {
	for _, c := range cands {
		if c.set {
			return c
		}
	}
	return value[T]{}
}

// resolve is the one place where flag > env > file > default is decided.
// Every layer that sets a value is validated, even when a higher one
// overrides it, so a broken file cannot hide behind an environment variable
// until the day the variable is gone.
func resolve(o Options, file fileChoice, raw *rawFile) (*Config, error) {
	c := &Config{getenv: o.Getenv, Warnings: file.warnings, searched: file.searched}
	if file.path != "" {
		c.Source = file.path
		if abs, err := filepath.Abs(file.path); err == nil {
			c.Source = abs
		}
	}
	src := c.Source
	fromFile := func(set bool) value[string] { return value[string]{set: set, origin: OriginFile, from: src} }
	env := func(name string) value[string] {
		v := o.Getenv(name)
		return value[string]{v: v, set: v != "", origin: OriginEnv, from: "$" + name}
	}
	c.record("config", c.Source, file.origin, file.from)

	// database
	dbs := []value[string]{
		{v: o.DBFlag, set: o.DBFlag != "", origin: OriginFlag, from: "--db"},
		env(EnvDatabase),
		withValue(fromFile(raw.Database != nil), deref(raw.Database)),
	}
	if raw.Database != nil && *raw.Database == "" {
		return nil, errorf("%s: database is empty; remove the line to use the default", src)
	}
	for _, v := range dbs {
		if v.set {
			if err := checkDatabase(v); err != nil {
				return nil, err
			}
		}
	}
	db := first(dbs...)
	if !db.set {
		d, err := defaultDatabase(o)
		if err != nil {
			return nil, err
		}
		db = value[string]{v: d, set: true, origin: OriginDefault}
		if d != SystemDatabase && o.FileExists(SystemDatabase) {
			c.Warnings = append(c.Warnings, fmt.Sprintf(
				"using %s, the default when not running as root, although %s exists; set --db, $%s or database to share the hub's store",
				d, SystemDatabase, EnvDatabase))
		}
	}
	c.Database = db.v
	c.record("database", RedactDSN(db.v), db.origin, db.from)
	if IsPostgresURL(db.v) {
		// checkDatabase has parsed it.
		c.Database, c.dbURLPassword, _ = splitPassword(db.v)
	}
	if err := c.resolveDatabasePassword(raw.DatabasePasswordFile, db.origin == OriginFlag || db.origin == OriginEnv, src); err != nil {
		return nil, err
	}

	// paths
	home := first(withValue(fromFile(raw.Paths.Home != nil), deref(raw.Paths.Home)),
		value[string]{v: paths.DefaultHome, set: true, origin: OriginDefault})
	if err := paths.ValidateHome(home.v); err != nil {
		return nil, errorf("%s: paths.home: %w", src, err)
	}
	c.Paths.Home = home.v
	c.record("paths.home", home.v, home.origin, home.from)

	if p := raw.Paths.NbgitpullerParent; p != nil {
		clean, err := checkParent(*p)
		if err != nil {
			return nil, errorf("%s: paths.nbgitpuller_parent %q %s", src, *p, err)
		}
		c.Paths.NbgitpullerParent = clean
		c.record("paths.nbgitpuller_parent", clean, OriginFile, src)
	} else {
		c.record("paths.nbgitpuller_parent", "", OriginDefault, "")
	}

	for i, p := range raw.Paths.Patterns {
		if err := paths.ValidatePattern(p); err != nil {
			return nil, errorf("%s: paths.patterns[%d]: %w", src, i, err)
		}
		c.record(fmt.Sprintf("paths.patterns[%d]", i), p, OriginFile, src)
	}
	c.Paths.Patterns = raw.Paths.Patterns
	if len(raw.Paths.Patterns) == 0 {
		c.record("paths.patterns", "[]", OriginDefault, "")
	}

	// lti11
	if err := c.resolveConsumers(raw.LTI11.Consumers); err != nil {
		return nil, err
	}
	if err := c.resolvePlatforms(raw.LTI13.Platforms); err != nil {
		return nil, err
	}

	// passback
	var fileConc value[string]
	if p := raw.Passback.Concurrency; p != nil {
		fileConc = withValue(fromFile(true), strconv.Itoa(*p))
	}
	concs := []value[string]{env(EnvPassbackConcurrency), fileConc,
		{v: strconv.Itoa(DefaultConcurrency), set: true, origin: OriginDefault}}
	for _, v := range concs {
		if v.set {
			if _, err := parseConcurrency(v); err != nil {
				return nil, err
			}
		}
	}
	conc := first(concs...)
	c.Passback.Concurrency, _ = parseConcurrency(conc)
	c.record("passback.concurrency", conc.v, conc.origin, conc.from)

	timeouts := []value[string]{env(EnvPassbackTimeout),
		withValue(fromFile(raw.Passback.Timeout != nil), deref(raw.Passback.Timeout)),
		{v: DefaultTimeout.String(), set: true, origin: OriginDefault}}
	for _, v := range timeouts {
		if v.set {
			if _, err := parseTimeout(v); err != nil {
				return nil, err
			}
		}
	}
	to := first(timeouts...)
	c.Passback.Timeout, _ = parseTimeout(to)
	c.record("passback.timeout", c.Passback.Timeout.String(), to.origin, to.from)

	if err := c.resolveHub(raw, src); err != nil {
		return nil, err
	}
	c.resolveSandbox(raw, src)
	if err := c.resolveService(raw, src); err != nil {
		return nil, err
	}
	if err := c.resolveGraders(raw, src); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) resolveHub(raw *rawFile, src string) error {
	set := func(key string, p *string, def string) string {
		if p != nil {
			c.record(key, *p, OriginFile, src)
			return *p
		}
		c.record(key, def, OriginDefault, "")
		return def
	}
	defSpool := ""
	if !strings.Contains(c.Database, "://") {
		defSpool = filepath.Join(filepath.Dir(c.Database), "spool")
	}
	c.Hub.SpoolDir = set("hub.spool_dir", raw.Hub.SpoolDir, defSpool)
	if raw.Hub.SpoolDir != nil && !filepath.IsAbs(c.Hub.SpoolDir) {
		return errorf("%s: hub.spool_dir %q must be an absolute path", src, c.Hub.SpoolDir)
	}
	to := set("hub.record_timeout", raw.Hub.RecordTimeout, DefaultRecordTimeout.String())
	d, err := time.ParseDuration(to)
	if err != nil || d <= 0 || d > time.Minute {
		return errorf("%s: hub.record_timeout %q must be a duration between 0 and 1m, such as \"5s\"", src, to)
	}
	c.Hub.RecordTimeout = d
	c.Hub.Env = slices.Clone(DefaultHubEnv)
	if raw.Hub.Env != nil {
		c.Hub.Env = slices.Clone(raw.Hub.Env)
		c.record("hub.env", strings.Join(raw.Hub.Env, ","), OriginFile, src)
	} else {
		c.record("hub.env", strings.Join(DefaultHubEnv, ","), OriginDefault, "")
	}
	return nil
}

func (c *Config) resolveSandbox(raw *rawFile, src string) {
	set := func(key string, p *string, def string) string {
		if p != nil {
			c.record(key, *p, OriginFile, src)
			return *p
		}
		c.record(key, def, OriginDefault, "")
		return def
	}
	r := raw.Sandbox
	c.Sandbox.Listen = set("sandbox.listen", r.Listen, "127.0.0.1:8765")
	c.Sandbox.HubURL = set("sandbox.hub_url", r.HubURL, "http://127.0.0.1:8000")
	c.Sandbox.CourseRepo = set("sandbox.course_repo", r.CourseRepo, "")
	def := ""
	if len(c.LTI11.Consumers) > 0 {
		def = c.LTI11.Consumers[0].Key
	}
	c.Sandbox.ConsumerKey = set("sandbox.consumer_key", r.ConsumerKey, def)
}

func (c *Config) resolveService(raw *rawFile, src string) error {
	set := func(key string, p *string, def string) string {
		if p != nil {
			c.record(key, *p, OriginFile, src)
			return *p
		}
		c.record(key, def, OriginDefault, "")
		return def
	}
	r := raw.Service
	c.Service.Graders = slices.Clone(r.Graders)
	if r.Graders != nil {
		c.record("service.graders", strings.Join(r.Graders, ","), OriginFile, src)
	} else {
		c.record("service.graders", "", OriginDefault, "")
	}
	for _, g := range r.Graders {
		kind, name, ok := strings.Cut(strings.TrimSpace(g), ":")
		if !ok || strings.TrimSpace(name) == "" || (kind != "group" && kind != "user") {
			return errorf("%s: service.graders: %q: want \"group:NAME\" (a hub group) or \"user:NAME\"", src, g)
		}
	}
	c.Service.Listen = set("service.listen", r.Listen, "")
	c.Service.Name = set("service.name", r.Name, "ltigrade")
	c.Service.Prefix = set("service.prefix", r.Prefix, "/services/"+c.Service.Name+"/")
	if !strings.HasPrefix(c.Service.Prefix, "/") {
		return errorf("%s: service.prefix %q must start with /", src, c.Service.Prefix)
	}
	if !strings.HasSuffix(c.Service.Prefix, "/") {
		c.Service.Prefix += "/"
	}
	c.Service.HubAPIURL = set("service.hub_api_url", r.HubAPIURL, "")
	c.Service.HubAPITokenFile = set("service.hub_api_token_file", r.HubAPITokenFile, "")
	c.Service.HubPublicURL = set("service.hub_public_url", r.HubPublicURL, "")
	c.Service.MetricsTokenFile = set("service.metrics_token_file", r.MetricsTokenFile, "")
	return nil
}

func withValue(v value[string], s string) value[string] {
	v.v = s
	return v
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// where names a setting's origin in an error, e.g. "$LTIGRADE_DB" or a file.
func (v value[T]) where() string {
	if v.from == "" {
		return string(v.origin)
	}
	return v.from
}

func parseConcurrency(v value[string]) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v.v))
	if err != nil {
		return 0, errorf("passback.concurrency %q (from %s) is not a whole number", v.v, v.where())
	}
	if n < 1 || n > MaxConcurrency {
		return 0, errorf("passback.concurrency %d (from %s) must be between 1 and %d", n, v.where(), MaxConcurrency)
	}
	return n, nil
}

func parseTimeout(v value[string]) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v.v))
	if err != nil {
		return 0, errorf("passback.timeout %q (from %s) is not a duration; write it with a unit, such as \"20s\" or \"1m30s\"", v.v, v.where())
	}
	if d <= 0 {
		return 0, errorf("passback.timeout %q (from %s) must be positive", v.v, v.where())
	}
	return d, nil
}

// defaultDatabase picks the store when nothing names one. Root gets the
// system-wide path because on a hub the post_auth_hook runs as root and the
// graders' cron jobs must find the same store; anyone else gets a per-user
// file under $XDG_DATA_HOME (default ~/.local/share), so that trying ltigrade
// without root works instead of failing on /var/lib. Load warns when a
// non-root user falls back to their own store while the system one exists.
func defaultDatabase(o Options) (string, error) {
	if o.Geteuid() == 0 {
		return SystemDatabase, nil
	}
	dir := xdgDir(o.Getenv, "XDG_DATA_HOME", filepath.Join(".local", "share"))
	if dir == "" {
		return "", errorf("cannot choose a default database: neither $XDG_DATA_HOME nor $HOME is an absolute path; set --db or $%s", EnvDatabase)
	}
	return filepath.Join(dir, "ltigrade", "ltigrade.db"), nil
}

// checkParent validates nbgitpuller_parent, which mirrors nbgitpuller's
// NBGITPULLER_PARENTPATH: a directory relative to the user's notebook root.
func checkParent(p string) (string, error) {
	switch {
	case strings.IndexByte(p, 0) >= 0:
		return "", errors.New("contains a NUL byte")
	case path.IsAbs(p):
		return "", errors.New("must be relative to the user's notebook root, as NBGITPULLER_PARENTPATH is")
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("must not leave the user's notebook root")
	}
	if c == "." {
		c = ""
	}
	return c, nil
}

func (c *Config) resolveConsumers(raws []rawConsumer) error {
	src := c.Source
	seen := make(map[string]int)
	for i, rc := range raws {
		if rc.Key == nil || strings.TrimSpace(*rc.Key) == "" {
			return errorf("%s: lti11.consumers[%d] has no key", src, i)
		}
		key := *rc.Key
		if strings.TrimSpace(key) != key {
			return errorf("%s: lti11.consumers[%d] key %q has leading or trailing spaces, which the LMS would not send", src, i, key)
		}
		if j, dup := seen[key]; dup {
			return errorf("%s: lti11.consumers[%d] and [%d] both have key %q; each consumer key must appear once", src, j, i, key)
		}
		seen[key] = i
		var set []string
		for _, s := range []struct {
			name string
			v    *string
		}{{"secret", rc.Secret}, {"secret_file", rc.SecretFile}, {"secret_env", rc.SecretEnv}} {
			if s.v != nil {
				set = append(set, s.name)
			}
		}
		switch len(set) {
		case 0:
			return errorf("%s: consumer %q has no secret; set one of secret, secret_file or secret_env", src, key)
		case 1:
		default:
			return errorf("%s: consumer %q sets %s; set exactly one of secret, secret_file or secret_env", src, key, strings.Join(set, " and "))
		}
		s := &secretSource{consumer: key}
		prefix := fmt.Sprintf("lti11.consumers[%d].", i)
		c.record(prefix+"key", key, OriginFile, src)
		switch {
		case rc.Secret != nil:
			if *rc.Secret == "" {
				return errorf("%s: consumer %q has an empty secret", src, key)
			}
			s.inline = Secret{v: *rc.Secret}
			c.record(prefix+"secret", redacted, OriginFile, src)
		case rc.SecretFile != nil:
			f := *rc.SecretFile
			if f == "" || strings.IndexByte(f, 0) >= 0 {
				return errorf("%s: consumer %q: secret_file %q is not a file name", src, key, f)
			}
			// Relative names are taken from the config file's directory, so
			// the pair can move together and cron's working directory does
			// not matter.
			if !filepath.IsAbs(f) {
				f = filepath.Join(filepath.Dir(src), f)
			}
			s.file = f
			c.record(prefix+"secret_file", f, OriginFile, src)
		default:
			name := *rc.SecretEnv
			if name == "" || strings.ContainsAny(name, "=\x00") {
				return errorf("%s: consumer %q: secret_env %q is not an environment variable name", src, key, name)
			}
			s.env = name
			c.record(prefix+"secret_env", name, OriginFile, src)
		}
		c.LTI11.Consumers = append(c.LTI11.Consumers, Consumer{Key: key, src: s})
	}
	if len(raws) == 0 {
		c.record("lti11.consumers", "[]", OriginDefault, "")
	}
	return nil
}

func (c *Config) hasInlineSecret() bool {
	for _, k := range c.LTI11.Consumers {
		if k.src.file == "" && k.src.env == "" {
			return true
		}
	}
	return false
}

// Origin says which layer a setting came from.
type Origin string

// Origins in order of precedence, highest first.
const (
	OriginFlag    Origin = "flag"
	OriginEnv     Origin = "env"
	OriginFile    Origin = "file"
	OriginDefault Origin = "default"
)

// Setting is one effective setting as `ltigrade config show` lists it.
type Setting struct {
	Key    string `json:"key"`
	Value  string `json:"value"` // "[redacted]" for inline secrets
	Origin Origin `json:"origin"`
	From   string `json:"from,omitempty"` // "--db", "$LTIGRADE_DB", the config file; "" for defaults
}

func (c *Config) record(key, value string, origin Origin, from string) {
	c.settings = append(c.settings, Setting{Key: key, Value: value, Origin: origin, From: from})
}

// Setting returns the effective setting of key (as Describe names it) and
// whether there is one.
func (c *Config) Setting(key string) (Setting, bool) {
	for _, s := range c.settings {
		if s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}

// Describe lists the effective settings with where each came from. Secret
// values never appear: inline secrets show as "[redacted]", and secret_file
// and secret_env show the file or variable name.
func (c *Config) Describe() []Setting {
	return slices.Clone(c.settings)
}

func (c *Config) resolvePlatforms(raws []rawPlatform) error {
	src := c.Source
	seen := map[string]int{}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	for i, r := range raws {
		p := Platform{Issuer: str(r.Issuer), ClientID: str(r.ClientID), TokenURL: str(r.TokenURL),
			Audience: str(r.Audience), PrivateKeyFile: str(r.PrivateKeyFile), KeyID: str(r.KeyID),
			Canvas: r.Canvas != nil && *r.Canvas, UsernameKey: str(r.UsernameKey)}
		if p.UsernameKey == "" {
			p.UsernameKey = "email"
		}
		for name, v := range map[string]string{"issuer": p.Issuer, "client_id": p.ClientID, "token_url": p.TokenURL, "private_key_file": p.PrivateKeyFile} {
			if v == "" {
				return errorf("%s: lti13.platforms[%d] has no %s", src, i, name)
			}
		}
		if err := checkTokenURL(p.TokenURL); err != nil {
			return errorf("%s: lti13.platforms[%d].token_url %q %s", src, i, p.TokenURL, err)
		}
		if p.Audience == "" {
			p.Audience = p.TokenURL
		}
		if !filepath.IsAbs(p.PrivateKeyFile) && src != "" {
			p.PrivateKeyFile = filepath.Join(filepath.Dir(src), p.PrivateKeyFile)
		}
		k := p.Issuer + "\x00" + p.ClientID
		if j, dup := seen[k]; dup {
			return errorf("%s: lti13.platforms[%d] repeats issuer %q and client_id %q of lti13.platforms[%d]", src, i, p.Issuer, p.ClientID, j)
		}
		seen[k] = i
		c.LTI13.Platforms = append(c.LTI13.Platforms, p)
		pre := fmt.Sprintf("lti13.platforms[%d].", i)
		c.record(pre+"issuer", p.Issuer, OriginFile, src)
		c.record(pre+"client_id", p.ClientID, OriginFile, src)
		c.record(pre+"token_url", p.TokenURL, OriginFile, src)
		c.record(pre+"audience", p.Audience, OriginFile, src)
		c.record(pre+"private_key_file", p.PrivateKeyFile, OriginFile, src)
		c.record(pre+"key_id", p.KeyID, OriginFile, src)
		c.record(pre+"canvas", strconv.FormatBool(p.Canvas), OriginFile, src)
		c.record(pre+"username_key", p.UsernameKey, OriginFile, src)
	}
	if len(raws) == 0 {
		c.record("lti13.platforms", "[]", OriginDefault, "")
	}
	return nil
}

// checkTokenURL wants https: the token request carries a signed assertion
// and returns a bearer token. Plain http is allowed to loopback only, for
// tests and local doubles.
func checkTokenURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("is not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" || net.ParseIP(h) != nil && net.ParseIP(h).IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("must use https (plain http only to a loopback address)")
}
