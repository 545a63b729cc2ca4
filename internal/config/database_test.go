package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestDatabaseURLRefused: a value that is a URL or connection string ltigrade
// cannot open is not a SQLite file path either. Opened as one it would create
// a file named after it, password included, and answer from that empty
// store; so every layer that sets one is refused (exit 2), and no error shows
// the password. PostgreSQL is reached by a postgres:// or postgresql:// URL
// only (TestDatabasePostgresAccepted).
func TestDatabaseURLRefused(t *testing.T) {
	const pw = "pw-SECRET-71"
	tests := []struct {
		value string
		want  string // in the error
	}{
		{"postgres:grader:" + pw + "@db/x", "write it as a postgres:// URL"},
		{"postgres://grader:p/" + pw + "@db/x", "is not a valid URL"},
		{"host=db.example.edu user=grader password=" + pw + " dbname=ltigrade", "write it as a postgres:// URL"},
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

// TestDatabasePostgresAccepted: postgres:// and postgresql:// URLs name a
// PostgreSQL database, from every layer; `config show` never shows the
// password.
func TestDatabasePostgresAccepted(t *testing.T) {
	const pw = "pw-SECRET-72"
	for v, want := range map[string]string{
		"postgres://grader:" + pw + "@db.example.edu/ltigrade":                            "postgres://grader@db.example.edu/ltigrade",
		"postgresql://grader:" + pw + "@db.example.edu:5432/ltigrade?sslmode=verify-full": "postgresql://grader@db.example.edu:5432/ltigrade?sslmode=verify-full",
		"POSTGRES://grader:" + pw + "@db/x":                                               "postgres://grader@db/x",
		"postgres://db/x?user=grader&password=" + pw:                                      "postgres://db/x?user=grader",
		"postgres://grader@db/x":                                                          "postgres://grader@db/x",
	} {
		for _, layer := range []string{"flag", "env", "file"} {
			o := testOptions(fakeEnv{"HOME": "/h"}, 1000)
			content := ""
			switch layer {
			case "flag":
				o.DBFlag = v
			case "env":
				o.Getenv = fakeEnv{EnvDatabase: v, "HOME": "/h"}.get
			case "file":
				content = "database = " + tomlString(v) + "\n"
			}
			c, err := loadString(t, content, o)
			if err != nil {
				t.Errorf("%s: %v", layer, err)
				continue
			}
			// The URL without its password: no string of a Config holds it.
			if c.Database != want {
				t.Errorf("%s: Database = %q, want %q", layer, c.Database, want)
			}
			got, err := c.DatabasePassword()
			if wantPW := map[bool]string{true: pw}[strings.Contains(v, pw)]; got != wantPW || err != nil {
				t.Errorf("%s: DatabasePassword = %q, %v", layer, got, err)
			}
			s, _ := c.Setting("database")
			if strings.Contains(s.Value, pw) || strings.Contains(fmt.Sprintf("%+v %v %#v", c.Describe(), c, c), pw) {
				t.Errorf("%s: the password shows: %q", layer, s.Value)
			}
		}
	}
}

// TestDatabasePasswordFile: the PostgreSQL password may live in a file of
// its own (mode 0600), relative to the config file; it is read when the
// store is opened, never shown, and refused beside a URL that has one, for a
// SQLite database, or when others may read the file.
func TestDatabasePasswordFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "db.pass", "s3cret-DB-pw\n", 0o600)
	o := testOptions(fakeEnv{"HOME": "/h"}, 1000)
	o.ConfigFlag = writeFile(t, dir, "config.toml", "database = \"postgres://grader@db/ltigrade\"\ndatabase_password_file = \"db.pass\"\n", 0o600)
	c, err := Load(o)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := c.DatabasePassword()
	if err != nil || pw != "s3cret-DB-pw" {
		t.Fatalf("password %q, %v", pw, err)
	}
	if s, _ := c.Setting("database_password_file"); s.Value != filepath.Join(dir, "db.pass") {
		t.Errorf("setting shows %q", s.Value)
	}
	if strings.Contains(fmt.Sprintf("%+v %#v %v", c, c, c.Describe()), "s3cret-DB-pw") {
		t.Error("the password shows in the config")
	}

	// No file: no password from ltigrade (the driver may use $PGPASSWORD).
	o.ConfigFlag = writeFile(t, dir, "nofile.toml", "database = \"postgres://grader@db/ltigrade\"\n", 0o600)
	if c, err := Load(o); err != nil {
		t.Fatal(err)
	} else if pw, err := c.DatabasePassword(); pw != "" || err != nil {
		t.Errorf("without a file: %q %v", pw, err)
	}

	for name, tc := range map[string]struct{ content, want string }{
		"url has one": {"database = \"postgres://grader:pw@db/x\"\ndatabase_password_file = \"db.pass\"\n", "the database URL has a password too"},
		"sqlite":      {"database = \"/srv/lti.db\"\ndatabase_password_file = \"db.pass\"\n", "only for a PostgreSQL database"},
		"no database": {"database_password_file = \"db.pass\"\n", "only for a PostgreSQL database"},
	} {
		o.ConfigFlag = writeFile(t, dir, "bad.toml", tc.content, 0o600)
		_, err := Load(o)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s: err = %v", name, err)
		}
	}

	// --db naming a SQLite file overrides the file's PostgreSQL database:
	// its password file is then not needed.
	o.ConfigFlag = filepath.Join(dir, "config.toml")
	o.DBFlag = "/srv/other.db"
	if c, err := Load(o); err != nil || c.Database != "/srv/other.db" {
		t.Errorf("--db over a PostgreSQL config: %v", err)
	}
	o.DBFlag = ""

	writeFile(t, dir, "open.pass", "s3cret-DB-pw\n", 0o644)
	o.ConfigFlag = writeFile(t, dir, "open.toml", "database = \"postgres://grader@db/ltigrade\"\ndatabase_password_file = \"open.pass\"\n", 0o600)
	c, err = Load(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DatabasePassword(); err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("readable password file: %v", err)
	}
}
