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
