package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the Store for writers on several hosts: graders, cron jobs,
// the hub and the grading service sharing one database.
//
// Its guarantees hold under READ COMMITTED without relying on a single
// writer, as SQLite's do:
//
//   - Per-session locking: whatever decides which row of a session may go
//     out (Enqueue, both claims, SetLineItem) first locks the session's row
//     in sessions (SELECT ... FOR UPDATE, in id order, so two of them cannot
//     deadlock), and decides in a later statement, whose snapshot sees every
//     commit of the lock's previous holders. ClaimDue locks with FOR UPDATE
//     SKIP LOCKED: concurrent syncs take different sessions instead of
//     queueing behind each other. Complete and the void-dead-owner step
//     take only the row locks of the rows they change: they only ever end
//     an attempt (never start one), which can make a stale reader more
//     careful, never wrong, and Complete rechecks status and owner on the
//     locked row.
//   - The partial unique index passbacks_one_in_flight is the backstop: at
//     most one row per session in 'sending', whatever a bug might do.
//   - Serialization failures (40001) and deadlocks (40P01) are retried.
//   - Lease and backoff times are the database's clock: every time a caller
//     passes (Claim.Now, LeaseUntil, Result.NextTry...) was read on its own
//     clock, and is moved by the offset between that clock and the
//     database's (dbClock) before it is compared or stored, so hosts whose
//     clocks are minutes apart still agree on whose lease has ended.
type Postgres struct {
	pool     *pgxpool.Pool
	shown    string // the DSN without its password, for errors and db status
	secret   string // the password in use, scrubbed from every error
	clock    func() time.Time
	warnings []string

	skewMu sync.Mutex
	skew   time.Duration // database clock - this host's clock
	skewAt time.Time     // when skew was measured, by the real clock
}

func openPostgres(ctx context.Context, dsn string, o options) (*Postgres, error) {
	// The driver knows the schemes in lower case only.
	i := strings.Index(dsn, "://")
	dsn = strings.ToLower(dsn[:i]) + dsn[i:]
	shown := redactURL(dsn)
	u, uerr := url.Parse(dsn)
	if uerr != nil {
		return nil, fmt.Errorf("store: the database %s is not a valid URL", shown)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: the database %s: %s", shown, scrub(err.Error(), dsn, passwordOf(u)))
	}
	if _, has := u.User.Password(); !has && o.password != "" {
		cfg.ConnConfig.Password = o.password
	}
	// A database that does not answer must not hold a hub login (the hook
	// waits for record) or a cron job forever.
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if o.few && u.Query().Get("default_query_exec_mode") == "" {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	// A CLI process makes a few calls; a sync or the service a few at once.
	cfg.MaxConns = 8
	cfg.MinConns = 0
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "ltigrade"
	}
	s := &Postgres{shown: shown, secret: cfg.ConnConfig.Password, clock: time.Now}
	if o.clock != nil {
		s.clock = o.clock
	}
	if w := tlsWarning(u, cfg); w != "" {
		s.warnings = append(s.warnings, w)
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, s.wrap(err)
	}
	if o.noMigrate {
		return s, nil
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	return s, nil
}

// tlsWarning says when students' data would cross a network unencrypted:
// a host that is not loopback or a socket, with an sslmode that allows a
// plain connection.
func tlsWarning(u *url.URL, cfg *pgxpool.Config) string {
	mode := u.Query().Get("sslmode")
	if mode == "" {
		mode = "prefer"
	}
	switch mode {
	case "require", "verify-ca", "verify-full":
		return ""
	}
	host := cfg.ConnConfig.Host
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("the connection to PostgreSQL at %s may be unencrypted (sslmode=%s); add sslmode=verify-full to the database URL so launches and scores cross the network only over TLS", host, mode)
}

func passwordOf(u *url.URL) string {
	if u == nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}

// redactURL hides the password of a database URL: in its userinfo and in
// password-like query parameters.
func redactURL(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		// Not parseable: show the scheme only rather than guess.
		if i := strings.Index(dsn, "://"); i > 0 {
			return dsn[:i] + "://…"
		}
		return "(unparseable URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	changed := false
	for k := range q {
		if strings.Contains(strings.ToLower(k), "pass") {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// scrub removes secrets from an error text.
func scrub(msg string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 3 {
			msg = strings.ReplaceAll(msg, sec, "xxxxx")
		}
	}
	return msg
}

// pgError keeps the driver's error for errors.Is/As while its text is
// scrubbed of the password and names the database.
type pgError struct {
	msg string
	err error
}

func (e *pgError) Error() string { return e.msg }
func (e *pgError) Unwrap() error { return e.err }

// Hint says how the likely causes of a failure are fixed, for the CLI's
// "hint:" line.
func (e *pgError) Hint() string {
	var pe *pgconn.PgError
	if errors.As(e.err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return "check the password (database_password_file, $PGPASSWORD or ~/.pgpass) and the server's pg_hba.conf for this user and host"
		case "3D000":
			return "create the database first (createdb -O USER DBNAME); ltigrade creates its tables itself"
		case "42501":
			return "the user must be allowed to create tables in the database: make it the owner (ALTER DATABASE ... OWNER TO USER) or GRANT CREATE ON SCHEMA public TO USER"
		}
		return ""
	}
	var ce *pgconn.ConnectError
	if errors.As(e.err, &ce) {
		return "is PostgreSQL running and reachable at the host and port of the database URL? (ltigrade db status checks the connection)"
	}
	return ""
}

func (s *Postgres) wrap(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgError
	if errors.As(err, &pe) {
		return err
	}
	return &pgError{msg: "store: " + s.shown + ": " + scrub(err.Error(), s.secret), err: err}
}

// Warnings implements Store.
func (s *Postgres) Warnings() []string { return s.warnings }

// Close implements Store.
func (s *Postgres) Close() error {
	s.pool.Close()
	return nil
}

// retryable: the transaction lost a serialization race or a deadlock and
// may simply run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// retry runs f until it succeeds, fails otherwise than retryable, or has
// tried 30 times (waiting a little longer each time, with jitter).
func (s *Postgres) retry(ctx context.Context, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !retryable(err) || attempt >= 30 || ctx.Err() != nil {
			return s.wrap(err)
		}
		d := time.Duration(min(attempt*attempt, 100)) * time.Millisecond
		select {
		case <-ctx.Done():
			return s.wrap(ctx.Err())
		case <-time.After(d/2 + rand.N(d/2+1)):
		}
	}
}

// inTx runs f in a transaction, retried as a whole on serialization
// failures and deadlocks.
func (s *Postgres) inTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	return s.retry(ctx, func() error {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		if err := f(tx); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
}

// dbClock returns the map from a caller's times, read on this host's
// clock, to the database's clock: the offset between the two, measured
// with one query (to within half a round trip) and kept for a minute.
func (s *Postgres) dbClock(ctx context.Context) (func(time.Time) time.Time, error) {
	s.skewMu.Lock()
	defer s.skewMu.Unlock()
	if s.skewAt.IsZero() || time.Since(s.skewAt) > time.Minute {
		before := s.clock()
		var db time.Time
		if err := s.pool.QueryRow(ctx, `SELECT statement_timestamp()`).Scan(&db); err != nil {
			return nil, s.wrap(err)
		}
		after := s.clock()
		s.skew = db.Sub(before.Add(after.Sub(before) / 2))
		s.skewAt = time.Now()
	}
	skew := s.skew
	return func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.Add(skew).UTC().Truncate(time.Microsecond)
	}, nil
}

// migrate brings the schema up to date. Processes that start together on
// a new database take turns through an advisory lock; an up-to-date
// database costs one query.
func (s *Postgres) migrate(ctx context.Context) error {
	v, err := s.version(ctx)
	if err != nil {
		return err
	}
	if v > len(pgSchema) {
		return fmt.Errorf("store: %s has schema version %d, newer than this ltigrade knows (%d); use a newer ltigrade", s.shown, v, len(pgSchema))
	}
	if v == len(pgSchema) {
		return nil
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7105478330571776)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS ltigrade_schema (version integer NOT NULL)`); err != nil {
			return err
		}
		var cur int
		err := tx.QueryRow(ctx, `SELECT version FROM ltigrade_schema`).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			if _, err := tx.Exec(ctx, `INSERT INTO ltigrade_schema (version) VALUES (0)`); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		for i := cur; i < len(pgSchema); i++ {
			if _, err := tx.Exec(ctx, pgSchema[i]); err != nil {
				return fmt.Errorf("migrate to version %d: %w", i+1, err)
			}
		}
		_, err = tx.Exec(ctx, `UPDATE ltigrade_schema SET version = $1`, len(pgSchema))
		return err
	})
}

// version is the schema version of the database, 0 for an empty one.
func (s *Postgres) version(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT version FROM ltigrade_schema`).Scan(&v)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "42P01", errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, s.wrap(err)
	}
	return v, nil
}

// SchemaStatus implements Migrator.
func (s *Postgres) SchemaStatus(ctx context.Context) (SchemaStatus, error) {
	st := SchemaStatus{Backend: "postgres", Database: s.shown, Latest: len(pgSchema)}
	v, err := s.version(ctx)
	if err != nil {
		return st, err
	}
	st.Version = v
	if v < len(pgSchema) {
		return st, nil // counts need the current tables
	}
	err = s.pool.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM launches), (SELECT COUNT(*) FROM sessions),
		(SELECT COUNT(*) FROM passbacks), (SELECT COUNT(*) FROM ags_tokens),
		(SELECT COUNT(*) FROM passbacks WHERE status IN ('pending','retry','sending'))`).
		Scan(&st.Launches, &st.Sessions, &st.Passbacks, &st.Tokens, &st.Queued)
	return st, s.wrap(err)
}

// Migrate implements Migrator.
func (s *Postgres) Migrate(ctx context.Context) (SchemaStatus, error) {
	if err := s.migrate(ctx); err != nil {
		return SchemaStatus{}, err
	}
	return s.SchemaStatus(ctx)
}

// recordSQL stores one launch in one statement: the session is created or
// updated (and so row-locked) by INSERT ... ON CONFLICT, with the launch's
// id drawn first so that the session can point at it in the same write.
// The newest launch wins; an older one arriving late only counts.
const recordSQL = `WITH lid AS (SELECT nextval('launches_id_seq') AS id),
	s AS (
		INSERT INTO sessions AS s (platform, lti_user_id, resource_link_id, username, current_launch_id, launched_at, launch_count)
		SELECT $1::text, $2::text, $3::text, $4::text, lid.id, $5::timestamptz, 1 FROM lid
		ON CONFLICT (platform, lti_user_id, resource_link_id) DO UPDATE SET
			launch_count = s.launch_count + 1,
			current_launch_id = CASE WHEN excluded.launched_at >= s.launched_at THEN excluded.current_launch_id ELSE s.current_launch_id END,
			username = CASE WHEN excluded.launched_at >= s.launched_at THEN excluded.username ELSE s.username END,
			launched_at = GREATEST(s.launched_at, excluded.launched_at)
		RETURNING s.id),
	l AS (
		INSERT INTO launches (id, session_id, username, version, platform, client_id, deployment_id, lti_user_id,
			resource_link_id, resource_link_title, context_id, context_label, context_title, roles, outcome_url,
			sourcedid, result_data_accepted, submitted_at_accepted, lineitem, lineitems, ags_scopes, next_url, repo,
			checkout, opened, opened_file, launched_at, recorded_at, auth_state, next_signed, unsigned_next, pull_error, origin)
		SELECT lid.id, s.id, $4::text, $6::text, $1::text, $7::text, $8::text, $2::text, $3::text, $9::text, $10::text,
			$11::text, $12::text, $13::text, $14::text, $15::text, $16::text, $17::boolean, $18::text, $19::text, $20::text,
			$21::text, $22::text, $23::text, $24::text, $25::boolean, $5::timestamptz, $26::timestamptz, $27::bytea,
			$28::boolean, $29::text, $30::text, $31::text
		FROM lid, s RETURNING id, session_id),
	cn AS (
		INSERT INTO course_notebooks (platform, context_id, path, resource_link_id)
		SELECT $1::text, $10::text, $24::text, $3::text FROM l WHERE $25::boolean AND $24::text <> ''
		ON CONFLICT DO NOTHING)
	SELECT id, session_id FROM l`

func recordArgs(l *Launch) []any {
	if l.RecordedAt.IsZero() {
		l.RecordedAt = time.Now()
	}
	auth := l.AuthState
	if auth == nil {
		auth = []byte{}
	}
	args := []any{l.Platform, l.LTIUserID, l.ResourceLinkID, l.Username, l.LaunchedAt.UTC(),
		l.Version, l.ClientID, l.DeploymentID, l.ResourceLinkTitle, l.ContextID, l.ContextLabel, l.ContextTitle,
		l.Roles, l.OutcomeURL, l.SourcedID, strings.Join(l.ResultDataAccepted, ","), l.SubmittedAtAccepted,
		l.LineItem, l.LineItems, strings.Join(l.AGSScopes, ","), l.NextURL, l.Repo, l.Checkout, l.Opened,
		l.OpenedFile, l.RecordedAt.UTC(), auth, l.NextSigned, l.UnsignedNext, l.PullError, l.Origin}
	for i, a := range args {
		if v, ok := a.(string); ok {
			args[i] = pgText(v)
		}
	}
	return args
}

// pgText makes a string storable as PostgreSQL text, which cannot hold a
// NUL byte (SQLite can): a NUL becomes a space, as every display of a
// launch already shows control characters. Launch JSON is the only source
// of one, and no LMS sends one on purpose.
func pgText(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", " ")
}

// RecordLaunch implements Store: one round trip (the write and the read of
// the session pipelined in one transaction).
func (s *Postgres) RecordLaunch(ctx context.Context, l *Launch) (*Session, error) {
	var sess *Session
	err := s.retry(ctx, func() error {
		b := &pgx.Batch{}
		b.Queue(`BEGIN`)
		b.Queue(recordSQL, recordArgs(l)...)
		b.Queue(pgSessionSelect+` WHERE s.platform = $1 AND s.lti_user_id = $2 AND s.resource_link_id = $3`,
			l.Platform, l.LTIUserID, l.ResourceLinkID)
		b.Queue(`COMMIT`)
		br := s.pool.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&l.ID, &l.SessionID); err != nil {
			return err
		}
		var err error
		if sess, err = scanPGSession(br.QueryRow()); err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.Close()
	})
	if err != nil {
		return nil, err
	}
	return sess, nil
}

// RecordLaunches implements Store: one transaction, the launches
// pipelined in batches.
func (s *Postgres) RecordLaunches(ctx context.Context, ls []*Launch) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		const chunk = 1000
		for i := 0; i < len(ls); i += chunk {
			part := ls[i:min(i+chunk, len(ls))]
			b := &pgx.Batch{}
			for _, l := range part {
				b.Queue(recordSQL, recordArgs(l)...)
			}
			br := tx.SendBatch(ctx, b)
			for _, l := range part {
				if err := br.QueryRow().Scan(&l.ID, &l.SessionID); err != nil {
					br.Close()
					return err
				}
			}
			if err := br.Close(); err != nil {
				return err
			}
		}
		return nil
	})
}

const pgLaunchCols = `l.id, l.session_id, l.username, l.version, l.platform, l.client_id, l.deployment_id,
	l.lti_user_id, l.resource_link_id, l.resource_link_title, l.context_id, l.context_label, l.context_title,
	l.roles, l.outcome_url, l.sourcedid, l.result_data_accepted, l.submitted_at_accepted, l.lineitem,
	l.lineitems, l.ags_scopes, l.next_url, l.repo, l.checkout, l.opened, l.opened_file, l.launched_at,
	l.recorded_at, l.auth_state, l.next_signed, l.unsigned_next, l.pull_error, l.origin`

const pgSessionSelect = `SELECT ` + pgLaunchCols + `, s.id, s.launch_count FROM sessions s
	JOIN launches l ON l.id = s.current_launch_id`

func scanPGLaunch(r pgx.Row, extra ...any) (*Launch, error) {
	var l Launch
	var rda, scopes string
	dst := []any{&l.ID, &l.SessionID, &l.Username, &l.Version, &l.Platform, &l.ClientID, &l.DeploymentID,
		&l.LTIUserID, &l.ResourceLinkID, &l.ResourceLinkTitle, &l.ContextID, &l.ContextLabel, &l.ContextTitle,
		&l.Roles, &l.OutcomeURL, &l.SourcedID, &rda, &l.SubmittedAtAccepted, &l.LineItem, &l.LineItems, &scopes,
		&l.NextURL, &l.Repo, &l.Checkout, &l.Opened, &l.OpenedFile, &l.LaunchedAt, &l.RecordedAt, &l.AuthState,
		&l.NextSigned, &l.UnsignedNext, &l.PullError, &l.Origin}
	if err := r.Scan(append(dst, extra...)...); err != nil {
		return nil, err
	}
	l.ResultDataAccepted = splitList(rda)
	l.AGSScopes = splitList(scopes)
	l.LaunchedAt = l.LaunchedAt.UTC()
	l.RecordedAt = l.RecordedAt.UTC()
	return &l, nil
}

func scanPGSession(r pgx.Row) (*Session, error) {
	var sid int64
	var count int
	l, err := scanPGLaunch(r, &sid, &count)
	if err != nil {
		return nil, err
	}
	return &Session{Launch: *l, ID: sid, LaunchID: l.ID, LaunchCount: count}, nil
}

func (s *Postgres) sessions(ctx context.Context, q string, args ...any) ([]Session, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		sess, err := scanPGSession(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, *sess)
	}
	return out, s.wrap(rows.Err())
}

// Session implements Store.
func (s *Postgres) Session(ctx context.Context, id int64) (*Session, error) {
	sess, err := scanPGSession(s.pool.QueryRow(ctx, pgSessionSelect+` WHERE s.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return sess, s.wrap(err)
}

// Launch implements Store.
func (s *Postgres) Launch(ctx context.Context, id int64) (*Launch, error) {
	l, err := scanPGLaunch(s.pool.QueryRow(ctx, `SELECT `+pgLaunchCols+` FROM launches l WHERE l.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return l, s.wrap(err)
}

// ListSessions implements Store.
func (s *Postgres) ListSessions(ctx context.Context, f SessionFilter) ([]Session, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Username != "" {
		where = append(where, "l.username = "+arg(f.Username))
	}
	if f.Course != "" {
		p := arg(f.Course)
		where = append(where, fmt.Sprintf("(l.context_id = %s OR l.context_label = %s OR l.context_title = %s)", p, p, p))
	}
	if !f.Since.IsZero() {
		where = append(where, "l.launched_at >= "+arg(f.Since.UTC()))
	}
	q := pgSessionSelect
	if f.All {
		q = `SELECT ` + pgLaunchCols + `, s.id, s.launch_count FROM launches l JOIN sessions s ON s.id = l.session_id`
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY l.launched_at DESC, l.id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return s.sessions(ctx, q, args...)
}

// UserSessions implements Store.
func (s *Postgres) UserSessions(ctx context.Context, username string) ([]Session, error) {
	return s.sessions(ctx, pgSessionSelect+` WHERE s.username = $1 ORDER BY s.launched_at DESC, s.id DESC`, username)
}

// pgSessionSelectNoAuth is pgSessionSelect without the launch's auth
// state (see sessionSelectNoAuth).
var pgSessionSelectNoAuth = strings.Replace(pgSessionSelect, "l.auth_state", "''::bytea AS auth_state", 1)

// pgUsersChunk bounds the usernames of one UsersSessions query (an array
// parameter, so no placeholder limit; the bound keeps each answer modest).
const pgUsersChunk = 5000

// UsersSessions implements Store: one query per chunk of names, each a
// lookup on sessions_username.
func (s *Postgres) UsersSessions(ctx context.Context, usernames []string) (map[string][]Session, error) {
	out := map[string][]Session{}
	names := dedupe(usernames)
	for len(names) > 0 {
		n := min(len(names), pgUsersChunk)
		got, err := s.sessions(ctx, pgSessionSelectNoAuth+` WHERE s.username = ANY($1)
			ORDER BY s.username, s.launched_at DESC, s.id DESC`, names[:n])
		if err != nil {
			return nil, err
		}
		names = names[n:]
		for _, sess := range got {
			out[sess.Username] = append(out[sess.Username], sess)
		}
	}
	return out, nil
}

// UsernamesWithPrefix implements Store: a range scan on the byte-ordered
// (COLLATE "C") username, as in SQLite; LIKE would treat "%" and "_" in
// names as wildcards.
func (s *Postgres) UsernamesWithPrefix(ctx context.Context, prefix string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT username FROM sessions
		WHERE username >= $1 AND username < $2 ORDER BY username LIMIT 10000`, prefix, prefix+"\U0010FFFF")
	if err != nil {
		return nil, s.wrap(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.wrap(err)
	}
	out := names[:0]
	for _, u := range names {
		if strings.HasPrefix(u, prefix) {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// CourseNotebooks implements Store.
func (s *Postgres) CourseNotebooks(ctx context.Context, platform, contextID string) ([]CourseNotebook, error) {
	rows, err := s.pool.Query(ctx, `SELECT path, resource_link_id FROM course_notebooks
		WHERE platform = $1 AND context_id = $2 ORDER BY path, resource_link_id`, platform, contextID)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []CourseNotebook
	for rows.Next() {
		var n CourseNotebook
		if err := rows.Scan(&n.Path, &n.ResourceLinkID); err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, n)
	}
	return out, s.wrap(rows.Err())
}

// LinkOpenings implements Store.
func (s *Postgres) LinkOpenings(ctx context.Context, platform, resourceLinkID string) ([]LinkOpening, error) {
	rows, err := s.pool.Query(ctx, `SELECT username, opened, opened_file, next_signed FROM launches
		WHERE platform = $1 AND resource_link_id = $2 AND checkout <> '' AND origin = ''
		GROUP BY username, opened, opened_file, next_signed ORDER BY username, opened, opened_file, next_signed LIMIT 100000`,
		platform, resourceLinkID)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []LinkOpening
	for rows.Next() {
		var o LinkOpening
		if err := rows.Scan(&o.Username, &o.Opened, &o.OpenedFile, &o.Signed); err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, o)
	}
	return out, s.wrap(rows.Err())
}

// Prune implements Store.
func (s *Postgres) Prune(ctx context.Context, before time.Time) (PruneStats, error) {
	var st PruneStats
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		st = PruneStats{}
		b := before.UTC()
		open := `SELECT session_id FROM passbacks WHERE status IN ('pending','sending','retry')`
		tag, err := tx.Exec(ctx, `DELETE FROM passbacks WHERE session_id IN
			(SELECT id FROM sessions WHERE launched_at < $1 AND id NOT IN (`+open+`))`, b)
		if err != nil {
			return err
		}
		st.Passbacks = tag.RowsAffected()
		if tag, err = tx.Exec(ctx, `DELETE FROM sessions WHERE launched_at < $1 AND id NOT IN (`+open+`)`, b); err != nil {
			return err
		}
		st.Sessions = tag.RowsAffected()
		if tag, err = tx.Exec(ctx, `DELETE FROM launches WHERE launched_at < $1
			AND id NOT IN (SELECT current_launch_id FROM sessions)`, b); err != nil {
			return err
		}
		st.Launches = tag.RowsAffected()
		return nil
	})
	return st, err
}

// Token implements Store.
func (s *Postgres) Token(ctx context.Context, key string, now time.Time) (string, time.Time, bool, error) {
	var tok string
	var exp time.Time
	err := s.pool.QueryRow(ctx, `SELECT token, expires_at FROM ags_tokens WHERE cache_key = $1 AND expires_at > $2`,
		key, now.UTC()).Scan(&tok, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, s.wrap(err)
	}
	return tok, exp.UTC(), true, nil
}

// PutToken implements Store.
func (s *Postgres) PutToken(ctx context.Context, key, token string, expires time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM ags_tokens WHERE expires_at <= $1`, time.Now().UTC()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO ags_tokens (cache_key, token, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (cache_key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at`,
			key, token, expires.UTC())
		return err
	})
}

// lockSessions takes the per-session locks, in id order.
func lockSessions(ctx context.Context, tx pgx.Tx, ids []int64) error {
	_, err := tx.Exec(ctx, `SELECT id FROM sessions WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	return err
}

// SetLineItem implements Store.
func (s *Postgres) SetLineItem(ctx context.Context, launchID, sessionID int64, lineitem string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockSessions(ctx, tx, []int64{sessionID}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE launches SET lineitem = $1 WHERE id = $2 AND lineitem = ''`, lineitem, launchID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE passbacks SET target_url = $1 WHERE session_id = $2 AND launch_id = $3
			AND target_url = '' AND protocol = 'ags'`, lineitem, sessionID, launchID)
		return err
	})
}

func sortedSessions(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// LinkSessions implements Store.
func (s *Postgres) LinkSessions(ctx context.Context, checkout string) ([]Session, error) {
	return s.sessions(ctx, `SELECT DISTINCT ON (s.platform, s.resource_link_id) `+pgLaunchCols+`, s.id, s.launch_count
		FROM sessions s JOIN launches l ON l.id = s.current_launch_id
		WHERE l.checkout = $1 AND l.origin = ''
		ORDER BY s.platform, s.resource_link_id, l.id DESC LIMIT 1000`, pgText(checkout))
}
