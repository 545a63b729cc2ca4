package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ltigrade/ltigrade/internal/store"
	"github.com/ltigrade/ltigrade/internal/store/storetest"
)

// pgStore opens a store on a fresh test database, and a plain connection to
// the same database for what the store must cope with from other hosts.
func pgStore(t *testing.T) (store.Store, *pgx.Conn) {
	t.Helper()
	admin, why := storetest.AdminDSN()
	if admin == "" {
		t.Skip(why)
	}
	ctx := context.Background()
	dsn, drop, err := storetest.NewDatabase(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drop() })
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return s, conn
}

func journal(t *testing.T, s store.Store, user string) *store.Passback {
	t.Helper()
	sess, err := s.RecordLaunch(context.Background(), storetest.MkLaunch(user, "hw1", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	p := &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: user, Score: "0.5",
		Protocol: "lti11", TargetURL: "u"}
	if err := s.Enqueue(context.Background(), []*store.Passback{p}); err != nil {
		t.Fatal(err)
	}
	return p
}

// A sync claiming due rows skips a session another host has locked (it is
// enqueuing or claiming there) instead of waiting for it or taking its row:
// the per-session lock taken with FOR UPDATE SKIP LOCKED.
func TestPostgresClaimDueSkipsLockedSessions(t *testing.T) {
	s, conn := pgStore(t)
	ctx := context.Background()
	a, b := journal(t, s, "alice"), journal(t, s, "bob")
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT id FROM sessions WHERE id = $1 FOR UPDATE`, a.SessionID); err != nil {
		t.Fatal(err)
	}
	// Bounded: a claim that waited for the lock instead would fail here.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := time.Now()
	got, err := s.ClaimDue(cctx, store.Claim{Owner: "sync", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != b.ID {
		t.Fatalf("claimed %+v, want only bob's row %d (alice's session is locked)", got, b.ID)
	}
	tx.Rollback(ctx)
	got, err = s.ClaimDue(ctx, store.Claim{Owner: "sync", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 10})
	if err != nil || len(got) != 1 || got[0].ID != a.ID {
		t.Fatalf("after the lock: %+v %v", got, err)
	}
}

// The backstop: whatever a claim did wrong, the database refuses a second
// row of one session in 'sending'.
func TestPostgresOneRowInFlightPerSession(t *testing.T) {
	s, conn := pgStore(t)
	ctx := context.Background()
	a := journal(t, s, "alice")
	p := &store.Passback{SessionID: a.SessionID, LaunchID: a.LaunchID, Username: "alice", Score: "0.9", Protocol: "lti11", TargetURL: "u"}
	if err := s.Enqueue(ctx, []*store.Passback{p}); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(ctx, `UPDATE passbacks SET status = 'sending' WHERE session_id = $1`, a.SessionID)
	if err == nil || !strings.Contains(err.Error(), "passbacks_one_in_flight") {
		t.Fatalf("two rows of a session in flight: err = %v", err)
	}
}

// Errors name the database without its password, and a URL's password
// never reaches an error even when the server refuses it.
func TestPostgresErrorsHideThePassword(t *testing.T) {
	admin, why := storetest.AdminDSN()
	if admin == "" {
		t.Skip(why)
	}
	const pw = "wrong-pw-LEAK-31"
	bad := strings.Replace(admin, "ltigrade:", "ltigrade:"+pw+"x", 1)
	if !strings.Contains(bad, pw) {
		// The DSN has no password in it: put one in.
		bad = strings.Replace(admin, "://", "://ltigrade:"+pw+"@", 1)
	}
	_, err := store.Open(context.Background(), bad)
	if err == nil || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "xxxxx") {
		t.Fatalf("err = %v", err)
	}
	_, err = store.Open(context.Background(), bad, store.WithPassword(pw))
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Fatalf("err = %v", err)
	}
}
