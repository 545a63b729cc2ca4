package store

import (
	"context"
	"strings"
	"time"
)

// Option changes how Open connects.
type Option func(*options)

type options struct {
	password  string
	clock     func() time.Time
	noMigrate bool
	few       bool
}

// FewQueries says the process will make a few store calls and exit (record
// from the hub hook, resolve, a single score): on PostgreSQL each query is
// then sent in one round trip (pgx's exec mode) instead of being prepared
// first, which costs a second round trip per statement a new connection
// has not seen, that is, per statement of a short-lived process. A
// default_query_exec_mode in the DSN wins. Ignored for SQLite.
func FewQueries() Option { return func(o *options) { o.few = true } }

// WithoutMigration opens a store without bringing its schema up to date,
// for `ltigrade db status` to report what is there. Only Migrator's
// methods and Close may be used on such a store.
func WithoutMigration() Option { return func(o *options) { o.noMigrate = true } }

// WithPassword is the PostgreSQL password when the DSN names none (from
// database_password_file); without it the driver falls back to $PGPASSWORD
// and ~/.pgpass as libpq does. Ignored for SQLite.
func WithPassword(pw string) Option { return func(o *options) { o.password = pw } }

// WithClock replaces the host's clock the PostgreSQL store reads the callers'
// times against (tests: a host whose clock is off). The store turns every
// time a caller passes into an offset from this clock and applies it to the
// database's clock, so hosts whose clocks disagree still agree on leases.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// IsPostgres reports whether a database value names a PostgreSQL database
// (a postgres:// or postgresql:// URL) rather than a SQLite file path.
func IsPostgres(dsn string) bool {
	i := strings.Index(dsn, "://")
	if i < 0 {
		return false
	}
	switch strings.ToLower(dsn[:i]) {
	case "postgres", "postgresql":
		return true
	}
	return false
}

// Open opens the store a database value names: a postgres:// or
// postgresql:// URL is a PostgreSQL database, anything else the path of a
// SQLite file (created if missing). Either way the schema
// is brought up to date first (see Migrator), so a new release needs no
// separate step. Callers never name an implementation.
func Open(ctx context.Context, dsn string, opts ...Option) (Store, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if IsPostgres(dsn) {
		return openPostgres(ctx, dsn, o)
	}
	return openSQLite(dsn, o)
}

// Migrator is what `ltigrade db migrate` and `db status` need of a store.
type Migrator interface {
	// SchemaStatus says which schema version the database has and which
	// this build knows.
	SchemaStatus(ctx context.Context) (SchemaStatus, error)
	// Migrate applies the missing schema steps (Open already did; this is
	// for saying so).
	Migrate(ctx context.Context) (SchemaStatus, error)
}

// SchemaStatus describes a store's schema.
type SchemaStatus struct {
	Backend  string `json:"backend"`  // "sqlite" or "postgres"
	Database string `json:"database"` // the file, or the URL without its password
	Version  int    `json:"version"`  // schema steps applied
	Latest   int    `json:"latest"`   // schema steps this build knows
	// Counts of rows, for `db status` and to check a `db copy`.
	Launches  int64 `json:"launches"`
	Sessions  int64 `json:"sessions"`
	Passbacks int64 `json:"passbacks"`
	Tokens    int64 `json:"ags_tokens"`
	// Queued counts undelivered passbacks (pending, retry, sending).
	Queued int64 `json:"queued"`
}
