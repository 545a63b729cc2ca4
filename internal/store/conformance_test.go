package store_test

import (
	"testing"

	"github.com/ltigrade/ltigrade/internal/store/storetest"
)

// TestConformance runs the one suite every store passes, against SQLite and
// (when scripts/postgres-env.sh gave a server) PostgreSQL.
func TestConformance(t *testing.T) {
	storetest.ForEach(t, storetest.Run)
}

// TestConformanceFewQueries runs the suite on PostgreSQL as the short-lived
// commands open it (store.FewQueries: every query in pgx's exec mode, its
// parameters typed by the server), so that mode keeps every guarantee too.
func TestConformanceFewQueries(t *testing.T) {
	if dsn, why := storetest.AdminDSN(); dsn == "" {
		t.Skipf("PostgreSQL store not tested: %s", why)
	}
	storetest.Run(t, storetest.Backend{Name: "postgres", Open: storetest.PostgresFewQueries})
}
