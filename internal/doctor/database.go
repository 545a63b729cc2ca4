package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/store"
)

// CheckDatabase is checks "database" (it opens), "database_schema" (it is
// migrated) and "database_writable" (this user can write to it). It never
// creates or migrates anything: a SQLite file that does not exist is
// reported, not made (every other command would create it), and the store
// is opened without migrating. The open store is returned for the network
// checks (nil if it did not open); the caller closes it.
func CheckDatabase(ctx context.Context, cfg *config.Config) ([]Check, store.Store) {
	sqlite := !store.IsPostgres(cfg.Database)
	shown := cfg.Database
	if !sqlite {
		shown = config.RedactDSN(cfg.Database)
	}
	notOpen := func(c Check) []Check {
		return []Check{c, skipped("database_schema", "needs a database that opens"), skipped("database_writable", "needs a database that opens")}
	}
	if sqlite {
		fi, err := os.Stat(cfg.Database)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return notOpen(fail("database", "", "SQLite database "+cfg.Database+" does not exist",
				"check database in "+dash(cfg.Source)+" (or --db, $"+config.EnvDatabase+"): it must name the file the hub hook's `ltigrade record` writes, which creates it at the first launch")), nil
		case err != nil:
			return notOpen(fail("database", "", err.Error(), "")), nil
		case fi.IsDir():
			return notOpen(fail("database", "", cfg.Database+" is a directory, not a SQLite database", "point database at the file, e.g. "+filepath.Join(cfg.Database, "ltigrade.db"))), nil
		}
	}
	pw, err := cfg.DatabasePassword()
	if err != nil {
		return notOpen(fail("database", "", err.Error(), hintOf(err, ""))), nil
	}
	st, err := store.Open(ctx, cfg.Database, store.WithPassword(pw), store.WithoutMigration())
	if err != nil {
		return notOpen(fail("database", "", err.Error(), hintOf(err, "check database in "+dash(cfg.Source)))), nil
	}
	backend := "SQLite"
	if !sqlite {
		backend = "PostgreSQL"
	}
	open := ok("database", "", backend+" "+shown)
	if ws := st.Warnings(); len(ws) > 0 {
		// The SQLite store closes a file others can read as it opens it and
		// says so; PostgreSQL warns about connections without TLS.
		open = warn("database", "", open.Detail+"; "+strings.Join(ws, "; "), "")
	}
	out := []Check{open}
	schemaOK := true
	if m, isM := st.(store.Migrator); isM {
		c := checkSchema(ctx, m)
		schemaOK = c.OK
		out = append(out, c)
	}
	if p, isP := st.(store.Prober); isP {
		if schemaOK {
			out = append(out, checkWritable(ctx, p, cfg, sqlite))
		} else {
			// The probe writes to ltigrade's tables, which an unmigrated
			// PostgreSQL database lacks: its error would mislead.
			out = append(out, skipped("database_writable", "needs a migrated schema"))
		}
	}
	return out, st
}

func checkSchema(ctx context.Context, m store.Migrator) Check {
	const name = "database_schema"
	s, err := m.SchemaStatus(ctx)
	switch {
	case err != nil:
		return fail(name, "", err.Error(), "")
	case s.Version < s.Latest:
		return fail(name, "", fmt.Sprintf("schema version %d of %d: %s not applied", s.Version, s.Latest, plural(s.Latest-s.Version, "step", "steps")),
			"ltigrade db migrate (as the user that owns the database; any command that writes migrates too)")
	case s.Version > s.Latest:
		return fail(name, "", fmt.Sprintf("schema version %d is newer than this ltigrade knows (%d)", s.Version, s.Latest),
			"use the ltigrade release that migrated it, or a newer one")
	}
	return ok(name, "", fmt.Sprintf("version %d (latest); %s, %s queued",
		s.Version, plural(int(s.Launches), "launch", "launches"), plural(int(s.Queued), "score", "scores")))
}

func checkWritable(ctx context.Context, p store.Prober, cfg *config.Config, sqlite bool) Check {
	const name = "database_writable"
	if err := p.CheckWritable(ctx); err != nil {
		hint := "grant ltigrade's database user INSERT, UPDATE and DELETE on its tables"
		if sqlite {
			hint = fmt.Sprintf("the user running ltigrade (root for the hub hook and the sync timer) must be able to write %s and its folder %s (SQLite adds -wal and -shm files there)",
				cfg.Database, filepath.Dir(cfg.Database))
		}
		return fail(name, "", err.Error(), hint)
	}
	return ok(name, "", "a test write was made and rolled back")
}

func dash(s string) string {
	if s == "" {
		return "the config file"
	}
	return s
}
