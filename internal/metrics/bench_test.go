package metrics

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ltigrade/ltigrade/internal/store"
	"github.com/ltigrade/ltigrade/internal/store/storetest"
)

// BenchmarkScrape is one whole GET metrics (the store's figures, the
// spool's, the Go and process collectors, the text encoding) over an
// outbox of a big course's term: 2,000 sessions with 50 scores each
// (100,000 rows, all but the newest of each session superseded, a tenth
// of the newest still queued), on SQLite and, when a server is given
// (LTIGRADE_TEST_PG_DSN or LTIGRADE_PG_ENV_FILE), PostgreSQL after a
// VACUUM. `make bench-metrics`.
func BenchmarkScrape(b *testing.B) {
	dbs := map[string]string{"sqlite": filepath.Join(b.TempDir(), "lti.db")}
	if admin, _ := storetest.AdminDSN(); admin != "" {
		dsn, drop, err := storetest.NewDatabase(context.Background(), admin)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { drop() })
		dbs["postgres"] = dsn
	}
	for _, name := range []string{"sqlite", "postgres"} {
		dsn, ok := dbs[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			st, err := store.Open(ctx, dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			fill(b, st, 2000, 50)
			if name == "postgres" {
				// As autovacuum leaves a table between bursts of writes: the
				// visibility map set, so counts come from the status index.
				conn, err := pgx.Connect(ctx, dsn)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := conn.Exec(ctx, "VACUUM ANALYZE passbacks"); err != nil {
					b.Fatal(err)
				}
				conn.Close(ctx)
			}
			m := New(Source{Store: st, SpoolDir: filepath.Join(b.TempDir(), "spool")})
			h := m.Handler()
			b.ResetTimer()
			for range b.N {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				if rec.Code != 200 {
					b.Fatalf("scrape: %d", rec.Code)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/scrape")
		})
	}
}

// fill journals perSession scores for each of sessions sessions, then
// claims and completes the newest score of nine sessions in ten as sent.
func fill(b *testing.B, st store.Store, sessions, perSession int) {
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	ls := make([]*store.Launch, sessions)
	for i := range ls {
		ls[i] = storetest.MkLaunch(fmt.Sprintf("u%05d", i), "hw1", t0)
	}
	if err := st.RecordLaunches(ctx, ls); err != nil {
		b.Fatal(err)
	}
	for round := range perSession {
		ps := make([]*store.Passback, 0, sessions)
		for _, l := range ls {
			ps = append(ps, &store.Passback{SessionID: l.SessionID, LaunchID: l.ID, Username: l.Username, Notebook: "nb",
				Score: "0.5", ScoreGiven: 1, ScoreMax: 1, Protocol: "lti11", TargetURL: l.OutcomeURL, SourcedID: l.SourcedID,
				ConsumerKey: l.Platform, CreatedAt: t0.Add(time.Duration(round) * time.Minute)})
		}
		if err := st.Enqueue(ctx, ps); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	got, err := st.ClaimDue(ctx, store.Claim{Owner: "bench", Now: now, LeaseUntil: now.Add(time.Hour), Limit: sessions})
	if err != nil {
		b.Fatal(err)
	}
	res := map[int64]store.Result{}
	for i, p := range got {
		if i%10 != 0 {
			res[p.ID] = store.Result{Status: store.StatusSent}
		} else {
			res[p.ID] = store.Result{Status: store.StatusRetry, NextTry: now.Add(time.Hour)}
		}
	}
	if err := st.Complete(ctx, "bench", now, res); err != nil {
		b.Fatal(err)
	}
}
