// Package storetest is the one conformance suite every store.Store passes
// (Run), and the way tests anywhere in ltigrade get a fresh store of each
// backend (Backends): SQLite always, PostgreSQL when scripts/postgres-env.sh
// gave a server.
package storetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ltigrade/ltigrade/internal/store"
)

// EnvDSN names the PostgreSQL server the tests may create databases on:
// a DSN of a role with CREATEDB, as scripts/postgres-env.sh prints it.
const EnvDSN = "LTIGRADE_TEST_PG_DSN"

// EnvFile names the file `make test` saved scripts/postgres-env.sh's output
// in (PG_ENV_EXIT=3 there: PostgreSQL could not be installed).
const EnvFile = "LTIGRADE_PG_ENV_FILE"

// Opener gives a fresh, empty store and a way to open further handles on
// the same database, each standing for another process or host.
type Opener func(t *testing.T) (s store.Store, reopen func(opts ...store.Option) store.Store)

// Backend is one store implementation under test.
type Backend struct {
	Name string
	Open Opener
	// OneClock: every handle shares the caller's clock (SQLite, one host);
	// false when the database's clock decides leases (PostgreSQL).
	OneClock bool
}

// Backends lists the stores to test against. PostgreSQL is left out, with
// the reason logged, when no server was given; it fails the test when one
// was given but cannot be reached.
func Backends(t *testing.T) []Backend {
	bs := []Backend{{Name: "sqlite", Open: SQLite, OneClock: true}}
	dsn, why := AdminDSN()
	if dsn == "" {
		t.Logf("PostgreSQL store not tested: %s", why)
		return bs
	}
	return append(bs, Backend{Name: "postgres", Open: Postgres})
}

// ForEach runs f once per backend as a subtest.
func ForEach(t *testing.T, f func(t *testing.T, b Backend)) {
	for _, b := range Backends(t) {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

// SQLite opens a store in a new file under t.TempDir().
func SQLite(t *testing.T) (store.Store, func(opts ...store.Option) store.Store) {
	path := filepath.Join(t.TempDir(), "lti.db")
	return openAll(t, path)
}

// Postgres opens a store in a new database of the test server, dropped
// when the test ends.
func Postgres(t *testing.T) (store.Store, func(opts ...store.Option) store.Store) {
	return postgresWith(t)
}

// PostgresFewQueries is Postgres with every handle opened as a short-lived
// command opens it (store.FewQueries: no prepared statements).
func PostgresFewQueries(t *testing.T) (store.Store, func(opts ...store.Option) store.Store) {
	return postgresWith(t, store.FewQueries())
}

func postgresWith(t *testing.T, always ...store.Option) (store.Store, func(opts ...store.Option) store.Store) {
	admin, why := AdminDSN()
	if admin == "" {
		t.Skip(why)
	}
	dsn, drop, err := NewDatabase(context.Background(), admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("dropping the test database: %v", err)
		}
	})
	return openAll(t, dsn, always...)
}

func openAll(t *testing.T, dsn string, always ...store.Option) (store.Store, func(opts ...store.Option) store.Store) {
	open := func(opts ...store.Option) store.Store {
		t.Helper()
		s, err := store.Open(context.Background(), dsn, append(append([]store.Option{}, always...), opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(), open
}

var (
	adminOnce sync.Once
	adminDSN  string
	adminWhy  string
)

// AdminDSN is the test server's DSN from $LTIGRADE_TEST_PG_DSN or the file
// $LTIGRADE_PG_ENV_FILE, or "" and why there is none.
func AdminDSN() (string, string) {
	adminOnce.Do(func() {
		if d := os.Getenv(EnvDSN); d != "" {
			adminDSN = d
			return
		}
		f := os.Getenv(EnvFile)
		if f == "" {
			adminWhy = "neither $" + EnvDSN + " nor $" + EnvFile + " is set; `make test` sets them, or run: export $(bash scripts/postgres-env.sh | grep " + EnvDSN + ")"
			return
		}
		data, err := os.ReadFile(f)
		if err != nil {
			adminWhy = "$" + EnvFile + ": " + err.Error()
			return
		}
		env := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
				env[k] = v
			}
		}
		if env["PG_ENV_EXIT"] == "3" {
			adminWhy = "scripts/postgres-env.sh could not install PostgreSQL (exit 3; its message is in the `make test` output)"
			return
		}
		adminDSN = env[EnvDSN]
		if adminDSN == "" {
			adminWhy = f + " names no " + EnvDSN
		}
	})
	return adminDSN, adminWhy
}

// EnvBouncerDSN names the PgBouncer (session mode) in front of the test
// server, as scripts/postgres-env.sh prints it.
const EnvBouncerDSN = "LTIGRADE_TEST_PGBOUNCER_DSN"

// BouncerDSN is the PgBouncer's DSN from $LTIGRADE_TEST_PGBOUNCER_DSN or
// the file $LTIGRADE_PG_ENV_FILE, or "" and why there is none.
func BouncerDSN() (string, string) {
	if d := os.Getenv(EnvBouncerDSN); d != "" {
		return d, ""
	}
	f := os.Getenv(EnvFile)
	if f == "" {
		return "", "neither $" + EnvBouncerDSN + " nor $" + EnvFile + " is set"
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return "", "$" + EnvFile + ": " + err.Error()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && k == EnvBouncerDSN {
			return v, ""
		}
	}
	return "", f + " names no " + EnvBouncerDSN + " (scripts/postgres-env.sh could not start PgBouncer; its message says why)"
}

// NewDatabase creates an empty database on the server of admin (a role
// with CREATEDB) and returns its DSN and a func that drops it.
func NewDatabase(ctx context.Context, admin string) (string, func() error, error) {
	var b [6]byte
	rand.Read(b[:])
	name := "ltigrade_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("test PostgreSQL server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("test PostgreSQL server: %v", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		return err
	}
	return u.String(), drop, nil
}
