package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDatabaseURLRefused: a value that is a URL or connection string is not
// a SQLite file path. Opened as one it would create a file named after it,
// password included, and answer from that empty store; so every layer that
// sets one is refused (exit 2), and no error shows the password.
func TestDatabaseURLRefused(t *testing.T) {
	const pw = "pw-SECRET-71"
	tests := []struct {
		value string
		want  string // in the error
	}{
		{"postgres://grader:" + pw + "@db.example.edu/ltigrade", "PostgreSQL is not supported yet"},
		{"postgresql://grader:" + pw + "@db.example.edu:5432/ltigrade?sslmode=require", "PostgreSQL is not supported yet"},
		{"POSTGRES://grader:" + pw + "@db/x", "PostgreSQL is not supported yet"},
		{"postgres://grader:p/" + pw + "@db/x", "PostgreSQL is not supported yet"},
		{"postgres://db/x?user=grader&password=" + pw, "PostgreSQL is not supported yet"},
		{"postgres:grader:" + pw + "@db/x", "PostgreSQL is not supported yet"},
		{"host=db.example.edu user=grader password=" + pw + " dbname=ltigrade", "PostgreSQL is not supported yet"},
		{"mysql://grader:" + pw + "@db/ltigrade", `scheme "mysql", which ltigrade does not support`},
		{"redis://:" + pw + "@cache:6379", `scheme "redis", which ltigrade does not support`},
		{"sqlite:///var/lib/ltigrade/ltigrade.db", "without the sqlite: prefix"},
		{"file:/var/lib/ltigrade/ltigrade.db?mode=ro", "without the file: prefix"},
	}
	layers := []struct {
		name  string
		setup func(o *Options, v string) string // returns the config file content
		from  string
	}{
		{"flag", func(o *Options, v string) string { o.DBFlag = v; return "" }, "(from --db)"},
		{"env", func(o *Options, v string) string { o.Getenv = fakeEnv{EnvDatabase: v}.get; return "" }, "(from $LTIGRADE_DB)"},
		{"file", func(o *Options, v string) string { return "database = " + tomlString(v) + "\n" }, "config.toml)"},
		// A broken file is refused even when a flag overrides it.
		{"file under flag", func(o *Options, v string) string { o.DBFlag = "/ok.db"; return "database = " + tomlString(v) + "\n" }, "config.toml)"},
	}
	for i, tc := range tests {
		for _, l := range layers {
			// Not named after the value: t.TempDir's name would hold the password.
			t.Run(fmt.Sprintf("%s/%d", l.name, i), func(t *testing.T) {
				o := testOptions(fakeEnv{"HOME": "/h"}, 1000)
				content := l.setup(&o, tc.value)
				c, err := loadString(t, content, o)
				if err == nil {
					t.Fatalf("loaded, database %q", c.Database)
				}
				checkErrorStyle(t, err)
				msg := err.Error()
				if !strings.Contains(msg, tc.want) || !strings.Contains(msg, l.from) {
					t.Errorf("err = %q, want %q and %q", msg, tc.want, l.from)
				}
				var h interface{ Hint() string }
				if errors.As(err, &h) && strings.Contains(h.Hint(), pw) || strings.Contains(msg, pw) {
					t.Errorf("the password leaked: %q", msg)
				}
			})
		}
	}
}

func tomlString(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// TestDatabasePathsWithColons: a colon inside a file name is still a path.
func TestDatabasePathsWithColons(t *testing.T) {
	for _, p := range []string{"./data/a:b.db", "a:b.db", "/srv/x:y/ltigrade.db", "data/2026-01-01T10:00.db", "c:/x.db", "ltigrade.db", "my file=1.db"} {
		o := testOptions(fakeEnv{"HOME": "/h"}, 1000)
		o.DBFlag = p
		c, err := Load(o)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if c.Database != p {
			t.Errorf("Database = %q, want %q", c.Database, p)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/ltigrade/ltigrade.db":               "/var/lib/ltigrade/ltigrade.db",
		"postgres://u:pw@h/db":                        "postgres://u:xxxxx@h/db",
		"postgres://u@h/db":                           "postgres://u@h/db",
		"postgres://u:p@w/x@h/db":                     "postgres://u:xxxxx@h/db",
		"postgres://h/db?sslmode=require&password=pw": "postgres://h/db?sslmode=require&password=xxxxx",
		"host=h password=pw dbname=d":                 "host=h password=xxxxx dbname=d",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
