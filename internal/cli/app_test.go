package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ltigrade/ltigrade/internal/config"
)

// TestDatabaseExists: a missing database is named with what chose it, the
// default included, which the scripts cannot test (they run as root, whose
// default is the machine's /var/lib/ltigrade).
func TestDatabaseExists(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(cfgFile, []byte("[passback]\ntimeout = \"5s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOME": dir, "XDG_DATA_HOME": filepath.Join(dir, "data")}
	opts := config.Options{Getenv: func(k string) string { return env[k] }, Geteuid: func() int { return 1000 },
		FileExists: func(string) bool { return false }}
	for _, tc := range []struct {
		name, configFlag, dbFlag string
		want                     string
	}{
		{"default, no file", "", "", "database " + filepath.Join(dir, "data", "ltigrade", "ltigrade.db") +
			" does not exist (the default; nothing sets --db, $LTIGRADE_DB or database in a config file (none was loaded))"},
		{"default, file", cfgFile, "", "(the default; nothing sets --db, $LTIGRADE_DB or database in " + cfgFile + ")"},
		{"flag", cfgFile, filepath.Join(dir, "x.db"), "database " + filepath.Join(dir, "x.db") + " does not exist (named by --db)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			o.ConfigFlag, o.DBFlag = tc.configFlag, tc.dbFlag
			cfg, err := config.Load(o)
			if err != nil {
				t.Fatal(err)
			}
			err = databaseExists(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if code, hint := exitCode(err); code != ExitUsage || !strings.Contains(hint, "ltigrade record") {
				t.Errorf("exit %d, hint %q", code, hint)
			}
		})
	}
	// An existing database passes; so does a path the open will explain.
	for _, db := range []string{cfgFile, "/dev/null/sub/x.db"} {
		o := opts
		o.DBFlag = db
		cfg, err := config.Load(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := databaseExists(cfg); err != nil {
			t.Errorf("%s: %v", db, err)
		}
	}
}
