package store_test

import (
	"context"
	"errors"
	"fmt"
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

// db copy: a SQLite store moves into PostgreSQL whole (ids, outbox state,
// tokens), a second run adds nothing and still verifies, new rows get ids
// after the copied ones, and a target holding other data is refused
// without a change.
func TestCopySQLite(t *testing.T) {
	dst, conn := pgStore(t)
	ctx := context.Background()
	path := t.TempDir() + "/tljh.db"
	src, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var sess []*store.Session
	for i, u := range []string{"alice", "bob", "carol"} {
		l := storetest.MkLaunch(u, "hw1", now.Add(time.Duration(i)*time.Minute))
		s, err := src.RecordLaunch(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		sess = append(sess, s)
	}
	src.RecordLaunch(ctx, storetest.MkLaunch("alice", "hw1", now.Add(-time.Hour)))
	var ps []*store.Passback
	for _, s := range sess {
		ps = append(ps, &store.Passback{SessionID: s.ID, LaunchID: s.LaunchID, Username: s.Username, Score: "0.5",
			Protocol: "lti11", TargetURL: "u", SourcedID: s.SourcedID})
	}
	if err := src.Enqueue(ctx, ps); err != nil {
		t.Fatal(err)
	}
	got, _ := src.ClaimIDs(ctx, store.Claim{Owner: "o", Now: now, LeaseUntil: now.Add(time.Minute)}, []int64{ps[0].ID})
	src.Complete(ctx, "o", now, map[int64]store.Result{got[0].ID: {Status: store.StatusSent}})
	src.PutToken(ctx, "k", "tok", now.Add(time.Hour))
	lastSync := now.Add(-3 * time.Minute)
	if err := src.SyncFinished(ctx, lastSync); err != nil {
		t.Fatal(err)
	}
	want, _ := src.ListSessions(ctx, store.SessionFilter{All: true})
	wantPB, _ := src.ListPassbacks(ctx, store.PassbackFilter{})
	src.Close()

	for run := range 2 {
		st, err := store.CopySQLite(ctx, path, dst)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for _, tc := range st.Tables {
			wantAdded := tc.Source
			if run == 1 {
				wantAdded = 0
			}
			if !tc.Verified || tc.Added != wantAdded {
				t.Errorf("run %d: %+v", run, tc)
			}
		}
	}
	gotS, _ := dst.ListSessions(ctx, store.SessionFilter{All: true})
	gotPB, _ := dst.ListPassbacks(ctx, store.PassbackFilter{})
	if fmt.Sprint(gotS) != fmt.Sprint(want) || fmt.Sprint(gotPB) != fmt.Sprint(wantPB) {
		t.Fatalf("copied store differs:\n%v\n%v\n%v\n%v", gotS, want, gotPB, wantPB)
	}
	if tok, _, ok, _ := dst.Token(ctx, "k", now); !ok || tok != "tok" {
		t.Fatal("token cache not copied")
	}
	if ob, err := dst.OutboxStats(ctx); err != nil || !ob.LastSync.Equal(lastSync) {
		t.Fatalf("last sync after the copy: %v (%v), want %v", ob.LastSync, err, lastSync)
	}
	l, err := dst.RecordLaunch(ctx, storetest.MkLaunch("dave", "hw1", now))
	if err != nil || l.ID <= sess[2].ID || l.LaunchID <= int64(len(want)) {
		t.Fatalf("new rows after the copy: %+v %v", l, err)
	}

	// Another store's rows under the same ids: refused, nothing changed.
	conn.Exec(ctx, `UPDATE sessions SET lti_user_id = 'someone-else' WHERE id = 1`)
	before, _ := dst.(store.Migrator).SchemaStatus(ctx)
	if _, err := store.CopySQLite(ctx, path, dst); !errors.Is(err, store.ErrCopyConflict) {
		t.Fatalf("copy over other data: %v", err)
	}
	after, _ := dst.(store.Migrator).SchemaStatus(ctx)
	if before != after {
		t.Fatalf("a refused copy changed the target: %+v -> %+v", before, after)
	}
}

// A database of an earlier schema version is brought up to date on open,
// its data kept; `db status` (WithoutMigration) reports it as it is first.
func TestPostgresMigratesOlderSchema(t *testing.T) {
	s, conn := pgStore(t)
	ctx := context.Background()
	a := journal(t, s, "alice")
	latest, _ := s.(store.Migrator).SchemaStatus(ctx)
	if latest.Version < 2 {
		t.Fatalf("schema %+v", latest)
	}
	// As the first release left it: without the steps that added passbacks_leased and submissions.
	if _, err := conn.Exec(ctx, `DROP TABLE runs; DROP TABLE lineitem_labels; DROP INDEX launches_checkout; ALTER TABLE launches DROP COLUMN origin; DROP TABLE submissions; DROP INDEX passbacks_leased; UPDATE ltigrade_schema SET version = 1`); err != nil {
		t.Fatal(err)
	}
	dsn := conn.Config().ConnString()
	old, err := store.Open(ctx, dsn, store.WithoutMigration())
	if err != nil {
		t.Fatal(err)
	}
	st, err := old.(store.Migrator).SchemaStatus(ctx)
	old.Close()
	if err != nil || st.Version != 1 || st.Latest != latest.Latest {
		t.Fatalf("status without migration: %+v %v", st, err)
	}
	s2, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	st, _ = s2.(store.Migrator).SchemaStatus(ctx)
	var idx int
	conn.QueryRow(ctx, `SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'passbacks_leased'`).Scan(&idx)
	if st.Version != latest.Latest || idx != 1 || st.Passbacks != 1 {
		t.Fatalf("after open: %+v, index %d", st, idx)
	}
	if p, err := s2.Passback(ctx, a.ID); err != nil || p.Status != store.StatusPending {
		t.Fatalf("row kept: %+v %v", p, err)
	}
}

// A role that may not create ltigrade's tables gets the fix as a hint.
func TestPostgresPermissionHint(t *testing.T) {
	admin, why := storetest.AdminDSN()
	if admin == "" {
		t.Skip(why)
	}
	// The server's own "postgres" database: PostgreSQL 15 lets no one but
	// its owner create tables in its public schema.
	_, err := store.Open(context.Background(), admin, store.WithoutMigration())
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(context.Background(), admin)
	var h interface{ Hint() string }
	if err == nil || !errors.As(err, &h) || !strings.Contains(h.Hint(), "GRANT CREATE ON SCHEMA") {
		t.Fatalf("err = %v", err)
	}
}

// The superseding a claim does within its sessions reads those sessions'
// rows by passbacks_session, never the queue by the status index: with
// statistics from a queue of sent rows (pending rows look rare), the
// status index made every claim of a 20,000-row batch read every pending
// row, 325 ms a claim.
func TestPostgresSupersedeWithinSessionsUsesSessionIndex(t *testing.T) {
	s, conn := pgStore(t)
	ctx := context.Background()
	var ls []*store.Launch
	for i := range 5000 {
		ls = append(ls, storetest.MkLaunch(fmt.Sprintf("u%d", i), "hw1", time.Now()))
	}
	if err := s.RecordLaunches(ctx, ls); err != nil {
		t.Fatal(err)
	}
	var ps []*store.Passback
	for _, l := range ls {
		ps = append(ps, &store.Passback{SessionID: l.SessionID, LaunchID: l.ID, Username: l.Username, Score: "0.5", Protocol: "lti11", TargetURL: "u"})
	}
	if err := s.Enqueue(ctx, ps); err != nil {
		t.Fatal(err)
	}
	// Statistics of a sent queue, then a batch's worth pending again.
	for _, sql := range []string{`UPDATE passbacks SET status = 'sent'`, `ANALYZE passbacks`, `UPDATE passbacks SET status = 'pending'`} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	q := strings.ReplaceAll(store.PGSupersede, "NOW", "statement_timestamp()")
	for _, tail := range []string{` AND p.session_id = ANY($1)`, ` AND p.session_id IN (SELECT session_id FROM passbacks WHERE id = ANY($1))`} {
		arg := []int64{ps[0].SessionID, ps[1].SessionID}
		if strings.Contains(tail, "WHERE id") {
			arg = []int64{ps[0].ID, ps[1].ID}
		}
		rows, err := conn.Query(ctx, `EXPLAIN `+q+tail, arg)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if plan := strings.Join(lines, "\n"); strings.Contains(plan, "passbacks_status") || !strings.Contains(plan, "passbacks_session") {
			t.Errorf("plan of the superseding%s:\n%s", tail, plan)
		}
	}
}

// doctor's write check covers every table ltigrade writes, not one: a role
// left with only SELECT on the outbox could record launches but never
// journal a score.
func TestCheckWritableSeesEveryTable(t *testing.T) {
	s, conn := pgStore(t)
	ctx := context.Background()
	p := s.(store.Prober)
	if err := p.CheckWritable(ctx); err != nil {
		t.Fatalf("owner of every table: %v", err)
	}
	if _, err := conn.Exec(ctx, `REVOKE ALL ON passbacks FROM CURRENT_USER`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `GRANT SELECT ON passbacks TO CURRENT_USER`); err != nil {
		t.Fatal(err)
	}
	err := p.CheckWritable(ctx)
	if err == nil || !strings.Contains(err.Error(), "passbacks") {
		t.Fatalf("with only SELECT on passbacks: %v, want an error naming the table", err)
	}
}
