package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeEnv is an environment for Options.Getenv.
type fakeEnv map[string]string

func (e fakeEnv) get(k string) string { return e[k] }

// testOptions returns Options that touch nothing of the real process: a fake
// environment, the given euid, and only the named files "existing".
func testOptions(env fakeEnv, euid int, existing ...string) Options {
	return Options{
		Getenv:     env.get,
		Geteuid:    func() int { return euid },
		FileExists: func(p string) bool { return contains(existing, p) },
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// writeFile writes a file with exactly the given mode (umask aside).
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadString loads content as the --config file.
func loadString(t *testing.T, content string, o Options) (*Config, error) {
	t.Helper()
	o.ConfigFlag = writeFile(t, t.TempDir(), "config.toml", content, 0o600)
	return Load(o)
}

func TestDefaults(t *testing.T) {
	c, err := Load(testOptions(fakeEnv{"HOME": "/home/ann"}, 1000))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Database: "/home/ann/.local/share/ltigrade/ltigrade.db",
		Paths:    Paths{Home: "/home/jupyter-{username}"},
		Passback: Passback{Concurrency: 8, Timeout: 20 * time.Second},
		Hub:      Hub{SpoolDir: "/home/ann/.local/share/ltigrade/spool", RecordTimeout: 5 * time.Second, Env: DefaultHubEnv},
		Sandbox:  Sandbox{Listen: "127.0.0.1:8765", HubURL: "http://127.0.0.1:8000"},
		Service:  Service{Name: "ltigrade", Prefix: "/services/ltigrade/"},
		Submit:   DefaultSubmit,
	}
	if got, want := c.Searched(), []string{SystemConfigFile, "/home/ann/.config/ltigrade/config.toml"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Searched = %q, want %q", got, want)
	}
	c.settings, c.searched, c.getenv = nil, nil, nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %#v\nwant %#v", c, want)
	}
}

func TestDefaultDatabase(t *testing.T) {
	tests := []struct {
		name     string
		env      fakeEnv
		euid     int
		existing []string
		want     string
		warn     string
		err      string
	}{
		{"root", fakeEnv{"HOME": "/root"}, 0, nil, SystemDatabase, "", ""},
		{"root without HOME", fakeEnv{}, 0, nil, SystemDatabase, "", ""},
		{"user", fakeEnv{"HOME": "/home/ann"}, 1000, nil, "/home/ann/.local/share/ltigrade/ltigrade.db", "", ""},
		{"user XDG", fakeEnv{"HOME": "/home/ann", "XDG_DATA_HOME": "/data/ann"}, 1000, nil, "/data/ann/ltigrade/ltigrade.db", "", ""},
		{"relative XDG ignored", fakeEnv{"HOME": "/home/ann", "XDG_DATA_HOME": "data"}, 1000, nil, "/home/ann/.local/share/ltigrade/ltigrade.db", "", ""},
		{"no home", fakeEnv{}, 1000, nil, "", "", "neither $XDG_DATA_HOME nor $HOME"},
		{"no home but env", fakeEnv{EnvDatabase: "/x.db"}, 1000, nil, "/x.db", "", ""},
		{"user while system db exists", fakeEnv{"HOME": "/home/ann"}, 1000, []string{SystemDatabase},
			"/home/ann/.local/share/ltigrade/ltigrade.db", "although " + SystemDatabase + " exists", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(testOptions(tc.env, tc.euid, tc.existing...))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Database != tc.want {
				t.Errorf("Database = %q, want %q", c.Database, tc.want)
			}
			if got := strings.Join(c.Warnings, "\n"); tc.warn == "" && got != "" || !strings.Contains(got, tc.warn) {
				t.Errorf("Warnings = %q, want %q", got, tc.warn)
			}
		})
	}
}

func TestFindFile(t *testing.T) {
	user := "/home/ann/.config/ltigrade/config.toml"
	tests := []struct {
		name     string
		flag     string
		env      fakeEnv
		existing []string
		want     string
		origin   Origin
		warn     bool
	}{
		{"flag beats all", "/f.toml", fakeEnv{EnvConfig: "/e.toml", "HOME": "/home/ann"}, []string{SystemConfigFile, user}, "/f.toml", OriginFlag, false},
		{"env beats files", "", fakeEnv{EnvConfig: "/e.toml", "HOME": "/home/ann"}, []string{SystemConfigFile, user}, "/e.toml", OriginEnv, false},
		{"system beats user", "", fakeEnv{"HOME": "/home/ann"}, []string{SystemConfigFile, user}, SystemConfigFile, OriginDefault, true},
		{"system", "", fakeEnv{}, []string{SystemConfigFile}, SystemConfigFile, OriginDefault, false},
		{"user", "", fakeEnv{"HOME": "/home/ann"}, []string{user}, user, OriginDefault, false},
		{"user XDG", "", fakeEnv{"HOME": "/home/ann", "XDG_CONFIG_HOME": "/cfg"}, []string{"/cfg/ltigrade/config.toml", user}, "/cfg/ltigrade/config.toml", OriginDefault, false},
		{"none", "", fakeEnv{"HOME": "/home/ann"}, nil, "", OriginDefault, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(tc.env, 1000, tc.existing...)
			o.ConfigFlag = tc.flag
			fc, err := findFile(o)
			if err != nil {
				t.Fatal(err)
			}
			if fc.path != tc.want || fc.origin != tc.origin || (len(fc.warnings) > 0) != tc.warn {
				t.Errorf("findFile = %+v, want %q %q warn=%v", fc, tc.want, tc.origin, tc.warn)
			}
			// What was looked for is reported by `config show`.
			if tc.flag != "" || tc.env[EnvConfig] != "" {
				if len(fc.searched) != 1 || fc.searched[0] != tc.want {
					t.Errorf("searched = %q, want only %q", fc.searched, tc.want)
				}
			} else if len(fc.searched) == 0 || fc.searched[0] != SystemConfigFile || (len(fc.searched) == 2) != (tc.env["HOME"] != "") {
				t.Errorf("searched = %q, want %s and the per-user file if there is a HOME", fc.searched, SystemConfigFile)
			}
		})
	}
}

func TestLoadFromXDGConfig(t *testing.T) {
	cfg := t.TempDir()
	p := writeFile(t, cfg, "ltigrade/config.toml", `database = "/srv/db"`, 0o644)
	o := Options{Getenv: fakeEnv{"XDG_CONFIG_HOME": cfg, "HOME": "/nonexistent"}.get, Geteuid: func() int { return 1000 }}
	o.FileExists = func(s string) bool { return s == p } // keep a real /etc/ltigrade out of the test
	c, err := Load(o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != p || c.Database != "/srv/db" {
		t.Errorf("Source %q Database %q", c.Source, c.Database)
	}
}

func TestExplicitFileMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.toml")
	o := testOptions(fakeEnv{"HOME": "/h"}, 0)
	o.ConfigFlag = missing
	if _, err := Load(o); err == nil || err.Error() != "config: config file "+missing+" named by --config does not exist" {
		t.Errorf("flag: err = %v", err)
	}
	o = testOptions(fakeEnv{EnvConfig: missing}, 0)
	if _, err := Load(o); err == nil || !strings.Contains(err.Error(), "named by $LTIGRADE_CONFIG does not exist") {
		t.Errorf("env: err = %v", err)
	}
	o.ConfigFlag = t.TempDir()
	if _, err := Load(o); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("dir: err = %v", err)
	}
}

func TestPrecedence(t *testing.T) {
	file := `
database = "/file.db"
[passback]
concurrency = 4
timeout = "1m"
`
	tests := []struct {
		name     string
		flag     string
		env      fakeEnv
		db       string
		dbOrigin Origin
		conc     int
		timeout  time.Duration
	}{
		{"file", "", fakeEnv{}, "/file.db", OriginFile, 4, time.Minute},
		{"env", "", fakeEnv{EnvDatabase: "/env.db", EnvPassbackConcurrency: "16", EnvPassbackTimeout: "5s"}, "/env.db", OriginEnv, 16, 5 * time.Second},
		{"flag", "/flag.db", fakeEnv{EnvDatabase: "/env.db"}, "/flag.db", OriginFlag, 4, time.Minute},
		{"empty env is unset", "", fakeEnv{EnvDatabase: ""}, "/file.db", OriginFile, 4, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(tc.env, 0)
			o.DBFlag = tc.flag
			c, err := loadString(t, file, o)
			if err != nil {
				t.Fatal(err)
			}
			if c.Database != tc.db || c.Passback.Concurrency != tc.conc || c.Passback.Timeout != tc.timeout {
				t.Errorf("got %q %d %s", c.Database, c.Passback.Concurrency, c.Passback.Timeout)
			}
			if s := setting(c, "database"); s.Origin != tc.dbOrigin {
				t.Errorf("database origin = %q, want %q", s.Origin, tc.dbOrigin)
			}
		})
	}
}

func setting(c *Config, key string) Setting {
	for _, s := range c.Describe() {
		if s.Key == key {
			return s
		}
	}
	return Setting{}
}

func TestFullFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "keys/b", "from-file\n", 0o600)
	cfgPath := writeFile(t, dir, "config.toml", `
database = "/var/lib/x.db"
[paths]
home = "/home/{username}"
nbgitpuller_parent = "./courses/"
patterns = ["/srv/course/autograded/{username}/{path}"]
[[lti11.consumers]]
key = "a"
secret = "inline-a"
[[lti11.consumers]]
key = "b"
secret_file = "keys/b"
[[lti11.consumers]]
key = "c"
secret_env = "C_SECRET"
[passback]
concurrency = 256
timeout = "1m30s"
`, 0o600)
	o := testOptions(fakeEnv{"C_SECRET": "from-env"}, 0)
	o.ConfigFlag = cfgPath
	c, err := Load(o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != cfgPath || c.Paths.Home != "/home/{username}" || c.Paths.NbgitpullerParent != "courses" ||
		!reflect.DeepEqual(c.Paths.Patterns, []string{"/srv/course/autograded/{username}/{path}"}) ||
		c.Passback.Concurrency != 256 || c.Passback.Timeout != 90*time.Second || len(c.Warnings) != 0 {
		t.Errorf("got %+v", c)
	}
	if l := c.Paths.Layout(); l.Root("bob") != "/home/bob" {
		t.Errorf("Layout().Root = %q", l.Root("bob"))
	}
	for key, want := range map[string]string{"a": "inline-a", "b": "from-file", "c": "from-env"} {
		s, err := c.ConsumerSecret(key)
		if err != nil || s.Reveal() != want {
			t.Errorf("ConsumerSecret(%q) = %q, %v, want %q", key, s.Reveal(), err, want)
		}
	}
	wantSources := []string{"secret (inline)", "secret_file " + filepath.Join(dir, "keys/b"), "secret_env C_SECRET"}
	for i, k := range c.LTI11.Consumers {
		if got := k.SecretSource(); got != wantSources[i] {
			t.Errorf("SecretSource(%s) = %q, want %q", k.Key, got, wantSources[i])
		}
	}
	if _, err := c.ConsumerSecret("zzz"); err == nil || err.Error() != `config: no LTI 1.1 consumer with key "zzz" in `+cfgPath {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := (&Config{}).ConsumerSecret("k"); err == nil || !strings.Contains(err.Error(), "no config file was loaded") {
		t.Errorf("no file: %v", err)
	}

	want := []Setting{
		{"config", cfgPath, OriginFlag, "--config"},
		{"database", "/var/lib/x.db", OriginFile, cfgPath},
		{"paths.home", "/home/{username}", OriginFile, cfgPath},
		{"paths.nbgitpuller_parent", "courses", OriginFile, cfgPath},
		{"paths.patterns[0]", "/srv/course/autograded/{username}/{path}", OriginFile, cfgPath},
		{"lti11.consumers[0].key", "a", OriginFile, cfgPath},
		{"lti11.consumers[0].secret", "[redacted]", OriginFile, cfgPath},
		{"lti11.consumers[1].key", "b", OriginFile, cfgPath},
		{"lti11.consumers[1].secret_file", filepath.Join(dir, "keys/b"), OriginFile, cfgPath},
		{"lti11.consumers[2].key", "c", OriginFile, cfgPath},
		{"lti11.consumers[2].secret_env", "C_SECRET", OriginFile, cfgPath},
		{"lti13.platforms", "[]", OriginDefault, ""},
		{"passback.concurrency", "256", OriginFile, cfgPath},
		{"passback.timeout", "1m30s", OriginFile, cfgPath},
	}
	if got := c.Describe(); len(got) < len(want) || !reflect.DeepEqual(got[:len(want)], want) {
		t.Errorf("Describe:\n got %v\nwant %v", got, want)
	}
}

func TestDescribeDefaultsAndEnv(t *testing.T) {
	c, err := Load(testOptions(fakeEnv{EnvPassbackTimeout: "45s", "HOME": "/h"}, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := []Setting{
		{"config", "", OriginDefault, ""},
		{"database", SystemDatabase, OriginDefault, ""},
		{"paths.home", "/home/jupyter-{username}", OriginDefault, ""},
		{"paths.nbgitpuller_parent", "", OriginDefault, ""},
		{"paths.patterns", "[]", OriginDefault, ""},
		{"lti11.consumers", "[]", OriginDefault, ""},
		{"lti13.platforms", "[]", OriginDefault, ""},
		{"passback.concurrency", "8", OriginDefault, ""},
		{"passback.timeout", "45s", OriginEnv, "$LTIGRADE_PASSBACK_TIMEOUT"},
	}
	if got := c.Describe(); len(got) < len(want) || !reflect.DeepEqual(got[:len(want)], want) {
		t.Errorf("Describe:\n got %v\nwant %v", got, want)
	}
}

func TestInvalid(t *testing.T) {
	const sec = "\n[[lti11.consumers]]\nkey = \"k\"\nsecret = \"x\"\n"
	tests := []struct {
		name, file string
		env        fakeEnv
		err        string
	}{
		{"unknown top key", `databse = "/x"`, nil, "unknown key databse (did you mean database?)"},
		{"unknown nested keys", "[passback]\nconcurency = 3\ntimeout = \"1s\"\n[pathz]\nhome = \"/h/{username}\"",
			nil, "unknown keys passback.concurency (did you mean passback.concurrency?), pathz, pathz.home (did you mean paths.home?)"},
		{"unknown consumer key", "[[lti11.consumers]]\nkey = \"k\"\nsecret = \"x\"\nsecrte = \"y\"", nil, "unknown key lti11.consumers.secrte (did you mean lti11.consumers.secret?)"},
		{"unknown far", `colour = "red"`, nil, "unknown key colour; known keys are database, "},
		{"syntax", "database = ", nil, ":1: invalid TOML: "},
		{"type", "[passback]\nconcurrency = \"eight\"", nil, "invalid TOML"},
		{"empty database", `database = ""`, nil, "database is empty"},
		{"duplicate consumer", sec + sec, nil, `lti11.consumers[0] and [1] both have key "k"`},
		{"empty key", "[[lti11.consumers]]\nkey = \" \"\nsecret = \"x\"", nil, "lti11.consumers[0] has no key"},
		{"missing key", "[[lti11.consumers]]\nsecret = \"x\"", nil, "lti11.consumers[0] has no key"},
		{"spaced key", "[[lti11.consumers]]\nkey = \"k \"\nsecret = \"x\"", nil, "leading or trailing spaces"},
		{"no secret", "[[lti11.consumers]]\nkey = \"k\"", nil, `consumer "k" has no secret; set one of secret, secret_file or secret_env`},
		{"two secrets", "[[lti11.consumers]]\nkey = \"k\"\nsecret = \"x\"\nsecret_env = \"E\"", nil, `consumer "k" sets secret and secret_env; set exactly one`},
		{"three secrets", "[[lti11.consumers]]\nkey = \"k\"\nsecret = \"x\"\nsecret_env = \"E\"\nsecret_file = \"/f\"", nil, "sets secret and secret_file and secret_env"},
		{"empty inline", "[[lti11.consumers]]\nkey = \"k\"\nsecret = \"\"", nil, `consumer "k" has an empty secret`},
		{"empty secret_file", "[[lti11.consumers]]\nkey = \"k\"\nsecret_file = \"\"", nil, "is not a file name"},
		{"bad secret_env", "[[lti11.consumers]]\nkey = \"k\"\nsecret_env = \"A=B\"", nil, "is not an environment variable name"},
		{"pattern without username", "[paths]\npatterns = [\"/srv/x/{path}\"]", nil, "paths.patterns[0]: paths: pattern template \"/srv/x/{path}\": must contain {username} exactly once"},
		{"pattern without path", "[paths]\npatterns = [\"/srv/{username}\"]", nil, "must end with /{path}"},
		{"home without username", "[paths]\nhome = \"/home/jupyter\"", nil, "paths.home: paths: home template \"/home/jupyter\": must contain {username}"},
		{"home with path", "[paths]\nhome = \"/home/{username}/{path}\"", nil, "must not contain {path}"},
		{"parent absolute", "[paths]\nnbgitpuller_parent = \"/x\"", nil, "must be relative"},
		{"parent escapes", "[paths]\nnbgitpuller_parent = \"a/../../x\"", nil, "must not leave"},
		{"bad duration", "[passback]\ntimeout = \"20\"", nil, `passback.timeout "20" (from `},
		{"zero duration", "[passback]\ntimeout = \"0s\"", nil, "must be positive"},
		{"negative duration", "[passback]\ntimeout = \"-1s\"", nil, "must be positive"},
		{"concurrency 0", "[passback]\nconcurrency = 0", nil, "passback.concurrency 0 (from "},
		{"concurrency 257", "[passback]\nconcurrency = 257", nil, "must be between 1 and 256"},
		{"env concurrency", "", fakeEnv{EnvPassbackConcurrency: "many"}, `passback.concurrency "many" (from $LTIGRADE_PASSBACK_CONCURRENCY) is not a whole number`},
		{"env timeout", "", fakeEnv{EnvPassbackTimeout: "soon"}, `passback.timeout "soon" (from $LTIGRADE_PASSBACK_TIMEOUT) is not a duration`},
		// A broken file is reported even when the environment overrides it.
		{"file checked under env", "[passback]\ntimeout = \"x\"", fakeEnv{EnvPassbackTimeout: "5s"}, `passback.timeout "x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := fakeEnv{"HOME": "/h"}
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := loadString(t, tc.file, testOptions(env, 0))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			checkErrorStyle(t, err)
		})
	}
}

// checkErrorStyle enforces the house style on an error from this package.
func checkErrorStyle(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "config: ") || strings.HasSuffix(msg, ".") {
		t.Errorf("error %q: want a config: prefix and no trailing period", msg)
	}
	if !errors.Is(err, ErrConfig) {
		t.Errorf("error %q does not wrap ErrConfig", msg)
	}
}

func TestConfigFileWarnings(t *testing.T) {
	env := "[[lti11.consumers]]\nkey = \"k\"\nsecret_env = \"X\"\n"
	tests := []struct {
		name, content string
		mode          os.FileMode
		want          []string
	}{
		{"inline private", "[[lti11.consumers]]\nkey = \"k\"\nsecret = \"x\"\n", 0o600, nil},
		{"env world readable", env, 0o644, nil},
		{"world writable", env, 0o666, []string{"is writable by group or others (mode 0666)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(fakeEnv{}, 0)
			o.ConfigFlag = writeFile(t, t.TempDir(), "c.toml", tc.content, tc.mode)
			c, err := Load(o)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Warnings) != len(tc.want) {
				t.Fatalf("Warnings = %q, want %q", c.Warnings, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(c.Warnings[i], w) || !strings.Contains(c.Warnings[i], o.ConfigFlag) {
					t.Errorf("Warnings[%d] = %q, want %q and the file name", i, c.Warnings[i], w)
				}
			}
		})
	}
}

// TestInlineSecretInReadableFile: a config file that others can read must not
// hold a secret, so such a file is refused (exit 2), not used with a warning.
func TestInlineSecretInReadableFile(t *testing.T) {
	inline := "[[lti11.consumers]]\nkey = \"k\"\nsecret = \"x\"\n"
	for _, tc := range []struct {
		mode os.FileMode
		who  string
	}{{0o640, "group"}, {0o604, "others"}, {0o644, "group and others"}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			o := testOptions(fakeEnv{}, 0)
			o.ConfigFlag = writeFile(t, t.TempDir(), "c.toml", inline, tc.mode)
			_, err := Load(o)
			if err == nil {
				t.Fatal("loaded")
			}
			checkErrorStyle(t, err)
			want := fmt.Sprintf("config: config file %s holds an inline secret and is readable by %s (mode %04o)", o.ConfigFlag, tc.who, tc.mode)
			if err.Error() != want {
				t.Errorf("err = %q, want %q", err, want)
			}
			var h interface{ Hint() string }
			if !errors.As(err, &h) || !strings.Contains(h.Hint(), "chmod 600 "+o.ConfigFlag) || !strings.Contains(h.Hint(), "secret_file") {
				t.Errorf("hint = %v", h)
			}
		})
	}
}

func TestHubAndSandboxSettings(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.toml")
	os.WriteFile(cfgPath, []byte(`database = "/var/lib/x/ltigrade.db"
[hub]
record_timeout = "2s"
env = ["context_id"]
[sandbox]
hub_url = "http://127.0.0.1:9000"
course_repo = "/srv/course.git"
[[lti11.consumers]]
key = "k"
secret = "s"
`), 0o600)
	o := testOptions(fakeEnv{"HOME": "/h"}, 0)
	o.ConfigFlag = cfgPath
	c, err := Load(o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hub.SpoolDir != "/var/lib/x/spool" || c.Hub.RecordTimeout != 2*time.Second || len(c.Hub.Env) != 1 {
		t.Errorf("hub: %+v", c.Hub)
	}
	if c.Sandbox.HubURL != "http://127.0.0.1:9000" || c.Sandbox.ConsumerKey != "k" || c.Sandbox.Listen != "127.0.0.1:8765" {
		t.Errorf("sandbox: %+v", c.Sandbox)
	}
	os.WriteFile(cfgPath, []byte("[hub]\nspool_dir = \"relative\"\n"), 0o600)
	if _, err := Load(o); err == nil {
		t.Error("relative spool_dir accepted")
	}
}

func TestLTI13Platforms(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.toml")
	write := func(body string) (*Config, error) {
		os.WriteFile(cfgPath, []byte(body), 0o600)
		o := testOptions(fakeEnv{"HOME": "/h"}, 0)
		o.ConfigFlag = cfgPath
		return Load(o)
	}
	c, err := write(`[[lti13.platforms]]
issuer = "https://canvas.instructure.com"
client_id = "10000000000001"
token_url = "https://sso.canvaslms.com/login/oauth2/token"
private_key_file = "lti13.pem"
[[lti13.platforms]]
issuer = "https://moodle.example.edu"
client_id = "abc"
token_url = "http://127.0.0.1:9999/token"
audience = "https://moodle.example.edu/aud"
private_key_file = "/etc/ltigrade/lti13.pem"
key_id = "k1"
canvas = true
`)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Platform("https://canvas.instructure.com", "10000000000001")
	if err != nil || p.Audience != p.TokenURL || p.PrivateKeyFile != filepath.Join(dir, "lti13.pem") {
		t.Fatalf("canvas platform: %+v %v", p, err)
	}
	if p, err := c.Platform("https://moodle.example.edu", ""); err != nil || p.KeyID != "k1" || !p.Canvas {
		t.Fatalf("moodle platform: %+v %v", p, err)
	}
	if _, err := c.Platform("https://other", "x"); err == nil {
		t.Fatal("unknown platform found")
	}
	for _, bad := range []string{
		"[[lti13.platforms]]\nissuer = \"i\"\nclient_id = \"c\"\nprivate_key_file = \"k\"\n",
		"[[lti13.platforms]]\nissuer = \"i\"\nclient_id = \"c\"\ntoken_url = \"http://lms.example/token\"\nprivate_key_file = \"k\"\n",
		"[[lti13.platforms]]\nissuer = \"i\"\nclient_id = \"c\"\ntoken_url = \"https://t\"\nprivate_key_file = \"k\"\n[[lti13.platforms]]\nissuer = \"i\"\nclient_id = \"c\"\ntoken_url = \"https://t\"\nprivate_key_file = \"k\"\n",
		"[[lti13.platforms]]\nissuer = \"i\"\nclient_idd = \"c\"\n",
	} {
		if _, err := write(bad); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}
