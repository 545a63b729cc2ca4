package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"github.com/jackc/pgx/v5"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/store"
)

// seedVersion changes whenever the seeded data changes shape, so that a
// cached database from an older benchseed is not reused.
const seedVersion = 1

// checkCorpus makes sure the rows seeded directly are the rows `ltigrade
// record` would store for the same input: it parses one launch with
// launch.Parse and maps it with Launch.StoreLaunch, as record does.
func checkCorpus(c *corpus) error {
	at := semesterStart.Add(time.Hour)
	for k := range c.links {
		l, err := launch.Parse([]byte(c.launchJSON(1, k, at)), time.Now())
		if err != nil {
			return fmt.Errorf("generated launch does not parse: %w", err)
		}
		got := l.StoreLaunch("")
		want := c.storeLaunch(1, k, at)
		want.RecordedAt = time.Time{}
		if !bytes.Equal(got.AuthState, want.AuthState) {
			return fmt.Errorf("link %d: auth_state differs from what record stores:\n got %s\nwant %s", k, got.AuthState, want.AuthState)
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("link %d: seeded row differs from what record stores:\n got %+v\nwant %+v", k, got, want)
		}
	}
	return nil
}

type event struct {
	at   int64 // unix seconds
	user int32
	link int16
}

// events spreads launches launches over each user's links (every link at
// least once while launches >= links), each in a window around the link's
// part of the semester, sorted by time as a hub would record them.
func events(c *corpus, launches int, seed uint64) []event {
	rng := rand.New(rand.NewPCG(seed, 0x6c7469677261))
	nl := len(c.links)
	step := semesterLen / time.Duration(nl)
	span := int64(2*step/time.Second) - 1
	out := make([]event, 0, c.users*launches)
	per := make([]int, nl)
	for u := range c.users {
		clear(per)
		for i := range launches {
			if i < nl {
				per[i]++
			} else {
				per[rng.IntN(nl)]++
			}
		}
		for k, n := range per {
			start := semesterStart.Add(time.Duration(k) * step).Unix()
			for range n {
				out = append(out, event{at: start + rng.Int64N(span), user: int32(u), link: int16(k)})
			}
		}
	}
	slices.SortFunc(out, func(a, b event) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return int(a.user) - int(b.user)
	})
	return out
}

func removeDB(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func cmdSeed(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	dbPath := fs.String("db", "", "database to create (required)")
	users := fs.Int("users", 100000, "users")
	launches := fs.Int("launches", 10, "launches per user")
	links := fs.Int("links", 5, "resource links of the course")
	batch := fs.Int("batch", 10000, "launches per RecordLaunches transaction")
	seed := fs.Uint64("seed", 1, "random seed")
	fs.Parse(args)
	if *dbPath == "" {
		return errors.New("-db is required")
	}
	params := fmt.Sprintf("benchseed v%d users=%d launches=%d links=%d seed=%d\n", seedVersion, *users, *launches, *links, *seed)
	if store.IsPostgres(*dbPath) {
		return seedPostgres(*dbPath, params, *users, *launches, *links, *batch, *seed)
	}
	marker := *dbPath + ".params"
	if b, err := os.ReadFile(marker); err == nil && string(b) == params {
		if _, err := os.Stat(*dbPath); err == nil {
			fmt.Fprintf(os.Stderr, "benchseed: reusing %s (%s)\n", *dbPath, strings.TrimSpace(params))
			return nil
		}
	}
	c, err := newCorpus(*users, *links)
	if err != nil {
		return err
	}
	if err := checkCorpus(c); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*dbPath), 0o700); err != nil {
		return err
	}
	os.Remove(marker)
	if err := removeDB(*dbPath); err != nil {
		return err
	}
	tmp := *dbPath + ".seeding"
	if err := removeDB(tmp); err != nil {
		return err
	}

	start := time.Now()
	evs := events(c, *launches, *seed)
	st, err := store.Open(context.Background(), tmp)
	if err != nil {
		return err
	}
	defer st.Close()
	total := len(evs)
	fmt.Fprintf(os.Stderr, "benchseed: seeding %d launches (%d users × %d, %d resource links) into %s\n",
		total, *users, *launches, *links, *dbPath)
	ctx := context.Background()
	buf := make([]*store.Launch, 0, *batch)
	lastReport := time.Now()
	for i, e := range evs {
		buf = append(buf, c.storeLaunch(int(e.user), int(e.link), time.Unix(e.at, 0)))
		if len(buf) == *batch || i == total-1 {
			if err := st.RecordLaunches(ctx, buf); err != nil {
				return err
			}
			buf = buf[:0]
			done := i + 1
			if time.Since(lastReport) > 5*time.Second || done == total {
				lastReport = time.Now()
				el := time.Since(start)
				rate := float64(done) / el.Seconds()
				fmt.Fprintf(os.Stderr, "benchseed: %7d/%d launches  %5.1fs  %6.0f launches/s  eta %4.0fs\n",
					done, total, el.Seconds(), rate, float64(total-done)/rate)
			}
		}
	}
	if err := st.Close(); err != nil {
		return err
	}
	nLaunches, nSessions, err := counts(tmp)
	if err != nil {
		return err
	}
	if _, err := os.Stat(tmp + "-wal"); err == nil {
		return fmt.Errorf("%s-wal left behind after close", tmp)
	}
	if err := os.Rename(tmp, *dbPath); err != nil {
		return err
	}
	if err := os.WriteFile(marker, []byte(params), 0o600); err != nil {
		return err
	}
	fi, _ := os.Stat(*dbPath)
	fmt.Fprintf(os.Stderr, "benchseed: seeded %d launches, %d sessions in %.1fs (%d MB)\n",
		nLaunches, nSessions, time.Since(start).Seconds(), fi.Size()>>20)
	return nil
}

func counts(path string) (launches, sessions int64, err error) {
	// Read-write, so that closing the last connection removes the WAL.
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT count(*) FROM launches`).Scan(&launches); err != nil {
		return 0, 0, err
	}
	err = db.QueryRow(`SELECT count(*) FROM sessions`).Scan(&sessions)
	return launches, sessions, err
}

// cmdInputs writes the per-run inputs of the record and resolve timings.
func cmdInputs(args []string) error {
	fs := flag.NewFlagSet("inputs", flag.ExitOnError)
	dir := fs.String("dir", "", "folder for the inputs (required)")
	users := fs.Int("users", 100000, "users seeded")
	links := fs.Int("links", 5, "resource links seeded")
	n := fs.Int("n", 50, "runs (lines per .args file)")
	home := fs.String("home", "/home/jupyter-{username}", "paths.home of the config")
	seed := fs.Uint64("seed", 2, "random seed")
	fs.Parse(args)
	if *dir == "" {
		return errors.New("-dir is required")
	}
	c, err := newCorpus(*users, *links)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(*seed, 0))
	var rec, res strings.Builder
	for i := range *n {
		// record: a new launch (later than every seeded one, and than the
		// runs before it) of an existing user's existing resource link.
		u, k := rng.IntN(*users), rng.IntN(*links)
		f := filepath.Join(*dir, fmt.Sprintf("launch-%03d.json", i))
		if err := os.WriteFile(f, []byte(c.launchJSON(u, k, afterSemester.Add(time.Duration(i)*time.Minute))), 0o600); err != nil {
			return err
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return err
		}
		rec.WriteString(abs + "\n")
		// resolve: a notebook inside what a random user's random link opened.
		u, k = rng.IntN(*users), rng.IntN(*links)
		res.WriteString(strings.ReplaceAll(*home, "{username}", c.username(u)) + "/" + c.links[k].notebook + "\n")
	}
	if err := os.WriteFile(filepath.Join(*dir, "record.args"), []byte(rec.String()), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*dir, "resolve.args"), []byte(res.String()), 0o600)
}

// cmdPassbacks creates a fresh store with n queued passbacks, one per
// session, journaled with Enqueue in batches.
func cmdPassbacks(args []string) error {
	fs := flag.NewFlagSet("passbacks", flag.ExitOnError)
	dbPath := fs.String("db", "", "database to (re)create (required)")
	n := fs.Int("n", 5000, "passbacks to queue")
	outcomeURL := fs.String("url", "", "outcome service URL of the sessions (required)")
	key := fs.String("key", consumerKey, "consumer key")
	batch := fs.Int("batch", 100, "passbacks per Enqueue transaction")
	quiet := fs.Bool("q", false, "no summary on stderr")
	queue := fs.Bool("queue", true, "queue one passback per session (false: sessions only)")
	csvFile := fs.String("csv", "", "also write a score --batch CSV (username,notebook,score) for the sessions")
	fs.Parse(args)
	if *dbPath == "" || *outcomeURL == "" {
		return errors.New("-db and -url are required")
	}
	if store.IsPostgres(*dbPath) {
		if err := resetPostgres(*dbPath); err != nil {
			return err
		}
	} else if err := removeDB(*dbPath); err != nil {
		return err
	}
	c, err := newCorpus(*n, 1)
	if err != nil {
		return err
	}
	st, err := store.Open(context.Background(), *dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	start := time.Now()
	ls := make([]*store.Launch, 0, *n)
	for u := range *n {
		l := c.storeLaunch(u, 0, semesterStart.Add(time.Duration(u)*time.Second))
		l.Platform, l.OutcomeURL = *key, *outcomeURL
		ls = append(ls, l)
	}
	for i := 0; i < len(ls); i += 10000 {
		if err := st.RecordLaunches(ctx, ls[i:min(i+10000, len(ls))]); err != nil {
			return err
		}
	}
	if *csvFile != "" {
		var b strings.Builder
		b.WriteString("username,notebook,score\n")
		for i, l := range ls {
			fmt.Fprintf(&b, "%s,/home/jupyter-%s/%s,%d/100\n", l.Username, l.Username, c.links[0].notebook, i%101)
		}
		if err := os.WriteFile(*csvFile, []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(3, 0))
	for i := 0; *queue && i < len(ls); i += *batch {
		var ps []*store.Passback
		for _, l := range ls[i:min(i+*batch, len(ls))] {
			given := float64(rng.IntN(101))
			ps = append(ps, &store.Passback{SessionID: l.SessionID, LaunchID: l.ID, Username: l.Username,
				Notebook: "/home/jupyter-" + l.Username + "/" + c.links[0].notebook,
				Score:    fmt.Sprintf("%g", given/100), ScoreGiven: given, ScoreMax: 100,
				Protocol: "lti11", TargetURL: l.OutcomeURL, SourcedID: l.SourcedID, ConsumerKey: l.Platform,
				ResultData: "autograded", SubmittedAt: time.Now().UTC().Format(time.RFC3339)})
		}
		if err := st.Enqueue(ctx, ps); err != nil {
			return err
		}
	}
	if !*quiet {
		fmt.Fprintf(os.Stderr, "benchseed: queued %d passbacks in %s (%.1fs)\n", *n, *dbPath, time.Since(start).Seconds())
	}
	return st.Close()
}

// resetPostgres empties a PostgreSQL database of every table in its public
// schema (the next open creates ltigrade's again). Naming the tables here
// went stale once: a table a later migration added was left behind, and
// the next migration failed on it.
func resetPostgres(dsn string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(names) == 0 {
		return err
	}
	_, err = conn.Exec(ctx, `DROP TABLE IF EXISTS `+strings.Join(names, ", ")+` CASCADE`)
	return err
}

// seedPostgres is cmdSeed for a PostgreSQL database: the parameters are
// kept in a table of the database, so a seeded database is reused.
func seedPostgres(dsn, params string, users, launches, links, batch int, seed uint64) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var have string
	if conn.QueryRow(ctx, `SELECT params FROM benchseed_params`).Scan(&have) == nil && strings.TrimSpace(have) == strings.TrimSpace(params) {
		fmt.Fprintf(os.Stderr, "benchseed: reusing the PostgreSQL database (%s)\n", strings.TrimSpace(params))
		return nil
	}
	if err := resetPostgres(dsn); err != nil {
		return err
	}
	c, err := newCorpus(users, links)
	if err != nil {
		return err
	}
	start := time.Now()
	evs := events(c, launches, seed)
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(os.Stderr, "benchseed: seeding %d launches into PostgreSQL\n", len(evs))
	buf := make([]*store.Launch, 0, batch)
	lastReport := time.Now()
	for i, e := range evs {
		buf = append(buf, c.storeLaunch(int(e.user), int(e.link), time.Unix(e.at, 0)))
		if len(buf) == batch || i == len(evs)-1 {
			if err := st.RecordLaunches(ctx, buf); err != nil {
				return err
			}
			buf = buf[:0]
			if time.Since(lastReport) > 5*time.Second || i == len(evs)-1 {
				lastReport = time.Now()
				rate := float64(i+1) / time.Since(start).Seconds()
				fmt.Fprintf(os.Stderr, "benchseed: %7d/%d launches  %6.0f launches/s  eta %4.0fs\n", i+1, len(evs), rate, float64(len(evs)-i-1)/rate)
			}
		}
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE benchseed_params (params text); INSERT INTO benchseed_params VALUES ('`+strings.TrimSpace(params)+`')`); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchseed: seeded %d launches in %.1fs\n", len(evs), time.Since(start).Seconds())
	return nil
}
