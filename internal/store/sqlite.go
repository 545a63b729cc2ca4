package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// schema is applied in steps; PRAGMA user_version records how far a
// database got, so opening an up-to-date store costs one pragma read (record
// runs on every hub login).
var schema = []string{
	`CREATE TABLE sessions (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		platform TEXT NOT NULL,
		lti_user_id TEXT NOT NULL,
		resource_link_id TEXT NOT NULL,
		username TEXT NOT NULL,
		current_launch_id INTEGER NOT NULL DEFAULT 0,
		launched_at INTEGER NOT NULL,
		launch_count INTEGER NOT NULL DEFAULT 0,
		UNIQUE (platform, lti_user_id, resource_link_id)
	);
	CREATE INDEX sessions_username ON sessions (username);
	CREATE INDEX sessions_launched_at ON sessions (launched_at);
	CREATE TABLE launches (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		session_id INTEGER NOT NULL,
		username TEXT NOT NULL,
		version TEXT NOT NULL,
		platform TEXT NOT NULL,
		client_id TEXT NOT NULL DEFAULT '',
		deployment_id TEXT NOT NULL DEFAULT '',
		lti_user_id TEXT NOT NULL,
		resource_link_id TEXT NOT NULL,
		resource_link_title TEXT NOT NULL DEFAULT '',
		context_id TEXT NOT NULL DEFAULT '',
		context_label TEXT NOT NULL DEFAULT '',
		context_title TEXT NOT NULL DEFAULT '',
		roles TEXT NOT NULL DEFAULT '',
		outcome_url TEXT NOT NULL DEFAULT '',
		sourcedid TEXT NOT NULL DEFAULT '',
		result_data_accepted TEXT NOT NULL DEFAULT '',
		submitted_at_accepted INTEGER NOT NULL DEFAULT 0,
		lineitem TEXT NOT NULL DEFAULT '',
		lineitems TEXT NOT NULL DEFAULT '',
		ags_scopes TEXT NOT NULL DEFAULT '',
		next_url TEXT NOT NULL DEFAULT '',
		repo TEXT NOT NULL DEFAULT '',
		checkout TEXT NOT NULL DEFAULT '',
		opened TEXT NOT NULL DEFAULT '',
		opened_file INTEGER NOT NULL DEFAULT 0,
		launched_at INTEGER NOT NULL,
		recorded_at INTEGER NOT NULL,
		auth_state TEXT NOT NULL
	);
	CREATE INDEX launches_session ON launches (session_id);
	CREATE INDEX launches_launched_at ON launches (launched_at);
	CREATE TABLE passbacks (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		session_id INTEGER NOT NULL,
		launch_id INTEGER NOT NULL,
		username TEXT NOT NULL,
		notebook TEXT NOT NULL,
		score TEXT NOT NULL,
		score_given REAL NOT NULL,
		score_max REAL NOT NULL,
		comment TEXT NOT NULL DEFAULT '',
		protocol TEXT NOT NULL,
		target_url TEXT NOT NULL,
		sourcedid TEXT NOT NULL DEFAULT '',
		consumer_key TEXT NOT NULL DEFAULT '',
		result_data TEXT NOT NULL DEFAULT '',
		submitted_at TEXT NOT NULL DEFAULT '',
		status TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt_at INTEGER,
		lease_owner TEXT NOT NULL DEFAULT '',
		lease_until INTEGER,
		last_error TEXT NOT NULL DEFAULT '',
		http_status INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		sent_at INTEGER
	);
	CREATE INDEX passbacks_status ON passbacks (status, next_attempt_at);
	CREATE INDEX passbacks_session ON passbacks (session_id, id);
	CREATE INDEX passbacks_username ON passbacks (username);`,
	// Claims walk each status in id order.
	`CREATE INDEX passbacks_status_id ON passbacks (status, id);`,
	// LTI 1.3 AGS: what a score needs besides the line item (target_url),
	// the user (sourcedid: the launch's sub) and the issuer (consumer_key);
	// and access tokens shared by every process (one per score would get
	// the tool rate-limited).
	`ALTER TABLE passbacks ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
	ALTER TABLE passbacks ADD COLUMN lineitems TEXT NOT NULL DEFAULT '';
	ALTER TABLE passbacks ADD COLUMN resource_link_id TEXT NOT NULL DEFAULT '';
	CREATE TABLE ags_tokens (
		cache_key TEXT PRIMARY KEY,
		token TEXT NOT NULL,
		expires_at INTEGER NOT NULL
	);`,
	// What a launch covers depends on what the other launches of its
	// course opened (package resolve): course_notebooks keeps each
	// course's opened notebooks, a few rows per assignment, so a resolve
	// reads a handful of rows instead of scanning the course's launches.
	// next_signed says whether the opened path came from data the LMS
	// signed; LTI 1.3 launches recorded before this version took it from
	// the browser's unsigned login request, so they count as unsigned.
	`ALTER TABLE launches ADD COLUMN next_signed INTEGER NOT NULL DEFAULT 1;
	ALTER TABLE launches ADD COLUMN unsigned_next TEXT NOT NULL DEFAULT '';
	ALTER TABLE launches ADD COLUMN pull_error TEXT NOT NULL DEFAULT '';
	UPDATE launches SET next_signed = 0 WHERE version = '1.3' AND next_url != '';
	CREATE INDEX launches_link ON launches (platform, resource_link_id);
	CREATE TABLE course_notebooks (
		platform TEXT NOT NULL,
		context_id TEXT NOT NULL,
		path TEXT NOT NULL,
		resource_link_id TEXT NOT NULL,
		PRIMARY KEY (platform, context_id, path, resource_link_id)
	) WITHOUT ROWID;
	INSERT OR IGNORE INTO course_notebooks (platform, context_id, path, resource_link_id)
		SELECT platform, context_id, opened, resource_link_id FROM launches WHERE opened_file = 1 AND opened != '';`,
	// Submissions for server-side grading, journaled before grading.
	`CREATE TABLE submissions (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		username TEXT NOT NULL,
		session_id INTEGER NOT NULL,
		launch_id INTEGER NOT NULL,
		path TEXT NOT NULL,
		assignment TEXT NOT NULL DEFAULT '',
		grader INTEGER NOT NULL,
		content BLOB NOT NULL,
		status TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		score REAL,
		out_of REAL,
		passback_id INTEGER NOT NULL DEFAULT 0,
		reason TEXT NOT NULL DEFAULT '',
		output TEXT NOT NULL DEFAULT '',
		lease_owner TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		started_at INTEGER,
		finished_at INTEGER
	);
	CREATE INDEX submissions_status ON submissions (status, id);
	CREATE INDEX submissions_user ON submissions (username, id);`,
	// A session made from the roster for a student who never launched
	// (origin "roster"); the checkout index finds the other students'
	// launches that cover a notebook.
	`ALTER TABLE launches ADD COLUMN origin TEXT NOT NULL DEFAULT '';
	CREATE INDEX launches_checkout ON launches (checkout);`,
	// Labels of AGS line items, for launches whose resource link has no
	// title (Open edX): checked_at paces the lookups of unknown ones.
	`CREATE TABLE lineitem_labels (
		lineitem TEXT PRIMARY KEY,
		label TEXT NOT NULL,
		checked_at INTEGER NOT NULL
	);`,
	// When named runs last finished (a sync, for the service's metrics):
	// the cron job and the service share only the database.
	`CREATE TABLE runs (
		name TEXT PRIMARY KEY,
		finished_at INTEGER NOT NULL
	);`,
}

// SQLite is the embedded Store.
type SQLite struct {
	db       *sql.DB
	path     string
	warnings []string
}

// Warnings implements Store: problems openSQLite found and fixed (a
// database file others could read).
func (s *SQLite) Warnings() []string { return s.warnings }

// openSQLite opens (creating if needed) the database at path. Directories
// are created 0700 and a new file 0600: launches hold students' data.
func openSQLite(path string, o options) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("store: no database path")
	}
	if strings.ContainsRune(path, 0) {
		return nil, errors.New("store: database path contains a NUL byte")
	}
	if err := refuseURL(path); err != nil {
		return nil, err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: cannot create the folder of database %s: %w", path, err)
		}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("store: cannot create database %s: %w", path, err)
		}
		f.Close()
	}
	var warnings []string
	if w := fixOthersAccess(path); w != "" {
		warnings = append(warnings, w)
	}
	// WAL lets readers run beside a writer; busy_timeout makes concurrent
	// writers wait for each other instead of failing with "database is
	// locked"; _txlock=immediate takes the write lock at BEGIN so two
	// read-then-write transactions cannot deadlock into SQLITE_BUSY.
	// synchronous=FULL: a journaled score survives power loss, not only a
	// crash of the process.
	q := url.Values{}
	q.Set("_busy_timeout", "15000")
	q.Set("_synchronous", "FULL")
	q.Set("_txlock", "immediate")
	q.Set("_foreign_keys", "1")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// One connection per process: writers queue inside SQLite's busy
	// handler across processes, and inside database/sql within one.
	db.SetMaxOpenConns(1)
	s := &SQLite{db: db, path: path, warnings: warnings}
	if err := s.walMode(); err != nil {
		db.Close()
		return nil, err
	}
	if o.noMigrate {
		return s, nil
	}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// walMode switches a new database to WAL (a persistent setting, so this is
// one pragma read afterwards). The switch needs an exclusive lock, and SQLite
// can answer SQLITE_BUSY to it at once, without waiting in its busy handler,
// when several processes open a fresh database together: retry it here.
func (s *SQLite) walMode() error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		var mode string
		err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err == nil {
			err = s.db.QueryRow(`PRAGMA journal_mode = WAL`).Scan(&mode)
			if err == nil && strings.EqualFold(mode, "wal") {
				return nil
			}
		}
		if err != nil && !isBusy(err) || time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("journal mode is %s, not wal", mode)
			}
			return s.wrap(err)
		}
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
	}
}

func isBusy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked)
}

func (s *SQLite) migrate() error {
	var v int
	if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return s.wrap(err)
	}
	if v > len(schema) {
		return fmt.Errorf("store: %s has schema version %d, newer than this ltigrade knows (%d); use a newer ltigrade", s.path, v, len(schema))
	}
	if v == len(schema) {
		return nil
	}
	tx, err := s.db.Begin()
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	// Re-read under the write lock: another process may have migrated.
	if err := tx.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return s.wrap(err)
	}
	for i := v; i < len(schema); i++ {
		if _, err := tx.Exec(schema[i]); err != nil {
			return fmt.Errorf("store: migrate to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, len(schema))); err != nil {
		return s.wrap(err)
	}
	return s.wrap(tx.Commit())
}

// wrap names the database in errors that would otherwise say only "unable
// to open database file" or "attempt to write a readonly database".
func (s *SQLite) wrap(err error) error {
	if err == nil {
		return nil
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		return fmt.Errorf("store: %s: %w", s.path, err)
	}
	return fmt.Errorf("store: %w", err)
}

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

// SchemaStatus implements Migrator.
func (s *SQLite) SchemaStatus(ctx context.Context) (SchemaStatus, error) {
	st := SchemaStatus{Backend: "sqlite", Database: s.path, Latest: len(schema)}
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&st.Version); err != nil {
		return st, s.wrap(err)
	}
	if st.Version < len(schema) {
		return st, nil // counts need the current tables
	}
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM launches), (SELECT COUNT(*) FROM sessions),
		(SELECT COUNT(*) FROM passbacks), (SELECT COUNT(*) FROM ags_tokens),
		(SELECT COUNT(*) FROM passbacks WHERE status IN ('pending','retry','sending'))`).
		Scan(&st.Launches, &st.Sessions, &st.Passbacks, &st.Tokens, &st.Queued)
	return st, s.wrap(err)
}

// Migrate implements Migrator; openSQLite has already migrated.
func (s *SQLite) Migrate(ctx context.Context) (SchemaStatus, error) {
	if err := s.migrate(); err != nil {
		return SchemaStatus{}, err
	}
	return s.SchemaStatus(ctx)
}

// relaxed runs f in a transaction committed without waiting for the disk
// (synchronous=NORMAL: in WAL mode the commit is in the OS's cache, safe
// from a crash of the process, and reaches the disk at the next fsynced
// commit or checkpoint). It is for what a power loss may lose harmlessly:
// delivery outcomes, whose loss only means the score is sent again. The
// connection goes back to FULL afterwards, so journal commits stay fsynced
// (and an fsynced commit also syncs the relaxed ones before it).
func (s *SQLite) relaxed(ctx context.Context, f func(tx *sql.Tx) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.wrap(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return s.wrap(err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return s.wrap(tx.Commit())
}

func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// RecordLaunch implements Store.
func (s *SQLite) RecordLaunch(ctx context.Context, l *Launch) (*Session, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer tx.Rollback()
	if err := s.recordTx(ctx, tx, l); err != nil {
		return nil, err
	}
	sess, err := s.sessionTx(ctx, tx, l.SessionID)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, s.wrap(err)
	}
	return sess, nil
}

// RecordLaunches records many launches in one transaction: for imports,
// spool ingestion and benchmark seeding, where a commit per launch would
// cost an fsync each.
func (s *SQLite) RecordLaunches(ctx context.Context, ls []*Launch) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	for _, l := range ls {
		if err := s.recordTx(ctx, tx, l); err != nil {
			return err
		}
	}
	return s.wrap(tx.Commit())
}

func (s *SQLite) recordTx(ctx context.Context, tx *sql.Tx, l *Launch) error {
	if l.RecordedAt.IsZero() {
		l.RecordedAt = time.Now()
	}
	la := micros(l.LaunchedAt)
	var sid, curLaunch, curAt int64
	err := tx.QueryRowContext(ctx, `SELECT id, current_launch_id, launched_at FROM sessions
		WHERE platform = ? AND lti_user_id = ? AND resource_link_id = ?`,
		l.Platform, l.LTIUserID, l.ResourceLinkID).Scan(&sid, &curLaunch, &curAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		res, err := tx.ExecContext(ctx, `INSERT INTO sessions (platform, lti_user_id, resource_link_id, username, launched_at)
			VALUES (?, ?, ?, ?, ?)`, l.Platform, l.LTIUserID, l.ResourceLinkID, l.Username, la)
		if err != nil {
			return s.wrap(err)
		}
		sid, _ = res.LastInsertId()
		curAt = -1 << 62
	case err != nil:
		return s.wrap(err)
	}
	l.SessionID = sid
	res, err := tx.ExecContext(ctx, `INSERT INTO launches (session_id, username, version, platform, client_id,
		deployment_id, lti_user_id, resource_link_id, resource_link_title, context_id, context_label,
		context_title, roles, outcome_url, sourcedid, result_data_accepted, submitted_at_accepted, lineitem,
		lineitems, ags_scopes, next_url, repo, checkout, opened, opened_file, launched_at, recorded_at, auth_state,
		next_signed, unsigned_next, pull_error, origin)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		sid, l.Username, l.Version, l.Platform, l.ClientID, l.DeploymentID, l.LTIUserID, l.ResourceLinkID,
		l.ResourceLinkTitle, l.ContextID, l.ContextLabel, l.ContextTitle, l.Roles, l.OutcomeURL, l.SourcedID,
		strings.Join(l.ResultDataAccepted, ","), b2i(l.SubmittedAtAccepted), l.LineItem, l.LineItems,
		strings.Join(l.AGSScopes, ","), l.NextURL, l.Repo, l.Checkout, l.Opened, b2i(l.OpenedFile), la,
		micros(l.RecordedAt), string(l.AuthState), b2i(l.NextSigned), l.UnsignedNext, l.PullError, l.Origin)
	if err != nil {
		return s.wrap(err)
	}
	l.ID, _ = res.LastInsertId()
	if l.OpenedFile && l.Opened != "" {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO course_notebooks (platform, context_id, path, resource_link_id)
			VALUES (?, ?, ?, ?)`, l.Platform, l.ContextID, l.Opened, l.ResourceLinkID); err != nil {
			return s.wrap(err)
		}
	}
	// Newest launch wins; a late-arriving older launch (a spooled one
	// ingested after a newer launch) is kept in history only.
	if la >= curAt {
		_, err = tx.ExecContext(ctx, `UPDATE sessions SET current_launch_id = ?, launched_at = ?, username = ?,
			launch_count = launch_count + 1 WHERE id = ?`, l.ID, la, l.Username, sid)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE sessions SET launch_count = launch_count + 1 WHERE id = ?`, sid)
	}
	return s.wrap(err)
}

const launchCols = `l.id, l.session_id, l.username, l.version, l.platform, l.client_id, l.deployment_id,
	l.lti_user_id, l.resource_link_id, l.resource_link_title, l.context_id, l.context_label, l.context_title,
	l.roles, l.outcome_url, l.sourcedid, l.result_data_accepted, l.submitted_at_accepted, l.lineitem,
	l.lineitems, l.ags_scopes, l.next_url, l.repo, l.checkout, l.opened, l.opened_file, l.launched_at,
	l.recorded_at, l.auth_state, l.next_signed, l.unsigned_next, l.pull_error, l.origin`

type scanner interface{ Scan(...any) error }

func scanLaunch(r scanner, extra ...any) (*Launch, error) {
	var l Launch
	var rda, scopes, auth string
	var sub, opf, signed int
	var la, ra int64
	dst := []any{&l.ID, &l.SessionID, &l.Username, &l.Version, &l.Platform, &l.ClientID, &l.DeploymentID,
		&l.LTIUserID, &l.ResourceLinkID, &l.ResourceLinkTitle, &l.ContextID, &l.ContextLabel, &l.ContextTitle,
		&l.Roles, &l.OutcomeURL, &l.SourcedID, &rda, &sub, &l.LineItem, &l.LineItems, &scopes, &l.NextURL,
		&l.Repo, &l.Checkout, &l.Opened, &opf, &la, &ra, &auth, &signed, &l.UnsignedNext, &l.PullError, &l.Origin}
	if err := r.Scan(append(dst, extra...)...); err != nil {
		return nil, err
	}
	l.ResultDataAccepted = splitList(rda)
	l.AGSScopes = splitList(scopes)
	l.SubmittedAtAccepted = sub != 0
	l.OpenedFile = opf != 0
	l.NextSigned = signed != 0
	l.LaunchedAt = fromMicros(la)
	l.RecordedAt = fromMicros(ra)
	l.AuthState = []byte(auth)
	return &l, nil
}

func scanSession(r scanner) (*Session, error) {
	var sid int64
	var count int
	l, err := scanLaunch(r, &sid, &count)
	if err != nil {
		return nil, err
	}
	return &Session{Launch: *l, ID: sid, LaunchID: l.ID, LaunchCount: count}, nil
}

const sessionSelect = `SELECT ` + launchCols + `, s.id, s.launch_count FROM sessions s
	JOIN launches l ON l.id = s.current_launch_id`

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *SQLite) sessionTx(ctx context.Context, q querier, id int64) (*Session, error) {
	sess, err := scanSession(q.QueryRowContext(ctx, sessionSelect+` WHERE s.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return sess, s.wrap(err)
}

// Session implements Store.
func (s *SQLite) Session(ctx context.Context, id int64) (*Session, error) {
	return s.sessionTx(ctx, s.db, id)
}

// Launch implements Store.
func (s *SQLite) Launch(ctx context.Context, id int64) (*Launch, error) {
	l, err := scanLaunch(s.db.QueryRowContext(ctx, `SELECT `+launchCols+` FROM launches l WHERE l.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return l, s.wrap(err)
}

// ListSessions implements Store.
func (s *SQLite) ListSessions(ctx context.Context, f SessionFilter) ([]Session, error) {
	var where []string
	var args []any
	if f.Username != "" {
		where = append(where, "l.username = ?")
		args = append(args, f.Username)
	}
	if f.Course != "" {
		where = append(where, "(l.context_id = ? OR l.context_label = ? OR l.context_title = ?)")
		args = append(args, f.Course, f.Course, f.Course)
	}
	if !f.Since.IsZero() {
		where = append(where, "l.launched_at >= ?")
		args = append(args, micros(f.Since))
	}
	var q string
	if f.All {
		q = `SELECT ` + launchCols + `, s.id, s.launch_count FROM launches l JOIN sessions s ON s.id = l.session_id`
	} else {
		q = sessionSelect
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY l.launched_at DESC, l.id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, *sess)
	}
	return out, s.wrap(rows.Err())
}

// UserSessions implements Store.
func (s *SQLite) UserSessions(ctx context.Context, username string) ([]Session, error) {
	rows, err := s.db.QueryContext(ctx, sessionSelect+` WHERE s.username = ? ORDER BY s.launched_at DESC, s.id DESC`, username)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, *sess)
	}
	return out, s.wrap(rows.Err())
}

// sessionSelectNoAuth is sessionSelect without the launch's auth_state
// (left empty): the hub's whole auth state is most of a launch row's
// bytes, and resolving never reads it.
var sessionSelectNoAuth = strings.Replace(sessionSelect, "l.auth_state", "'' AS auth_state", 1)

// usersChunk bounds the usernames of one UsersSessions query (SQLite's
// limit on bound variables is 32,766; a smaller IN list keeps each
// query's plan an index lookup per name).
const usersChunk = 500

// UsersSessions implements Store.
func (s *SQLite) UsersSessions(ctx context.Context, usernames []string) (map[string][]Session, error) {
	out := map[string][]Session{}
	names := dedupe(usernames)
	for len(names) > 0 {
		n := min(len(names), usersChunk)
		args := make([]any, n)
		for i, u := range names[:n] {
			args[i] = u
		}
		names = names[n:]
		rows, err := s.db.QueryContext(ctx, sessionSelectNoAuth+` WHERE s.username IN (`+placeholders(n)+`)
			ORDER BY s.username, s.launched_at DESC, s.id DESC`, args...)
		if err != nil {
			return nil, s.wrap(err)
		}
		for rows.Next() {
			sess, err := scanSession(rows)
			if err != nil {
				rows.Close()
				return nil, s.wrap(err)
			}
			out[sess.Username] = append(out[sess.Username], *sess)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, s.wrap(err)
		}
	}
	return out, nil
}

// dedupe returns the distinct strings of ss, in their first order.
func dedupe(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	var out []string
	for _, v := range ss {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// UsernamesWithPrefix implements Store.
func (s *SQLite) UsernamesWithPrefix(ctx context.Context, prefix string) ([]string, error) {
	// A range scan instead of LIKE: LIKE is case-insensitive and treats
	// "%" and "_" in names as wildcards.
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT username FROM sessions
		WHERE username >= ? AND username < ? ORDER BY username LIMIT 10000`, prefix, prefix+"\U0010FFFF")
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, s.wrap(err)
		}
		if strings.HasPrefix(u, prefix) {
			out = append(out, u)
		}
	}
	return out, s.wrap(rows.Err())
}

// Prune implements Store.
func (s *SQLite) Prune(ctx context.Context, before time.Time) (PruneStats, error) {
	var st PruneStats
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return st, s.wrap(err)
	}
	defer tx.Rollback()
	b := micros(before)
	// Sessions that still owe the LMS a score stay, whatever their age.
	open := `SELECT session_id FROM passbacks WHERE status IN ('pending','sending','retry')`
	res, err := tx.ExecContext(ctx, `DELETE FROM passbacks WHERE session_id IN
		(SELECT id FROM sessions WHERE launched_at < ? AND id NOT IN (`+open+`))`, b)
	if err != nil {
		return st, s.wrap(err)
	}
	st.Passbacks, _ = res.RowsAffected()
	res, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE launched_at < ? AND id NOT IN (`+open+`)`, b)
	if err != nil {
		return st, s.wrap(err)
	}
	st.Sessions, _ = res.RowsAffected()
	// Old launches go, except the current launch of a surviving session.
	res, err = tx.ExecContext(ctx, `DELETE FROM launches WHERE launched_at < ?
		AND id NOT IN (SELECT current_launch_id FROM sessions)`, b)
	if err != nil {
		return st, s.wrap(err)
	}
	st.Launches, _ = res.RowsAffected()
	return st, s.wrap(tx.Commit())
}

// Token returns a cached AGS access token, if one has not expired.
func (s *SQLite) Token(ctx context.Context, key string, now time.Time) (token string, expires time.Time, ok bool, err error) {
	var exp int64
	err = s.db.QueryRowContext(ctx, `SELECT token, expires_at FROM ags_tokens WHERE cache_key = ? AND expires_at > ?`,
		key, micros(now)).Scan(&token, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, s.wrap(err)
	}
	return token, fromMicros(exp), true, nil
}

// PutToken caches an AGS access token until it expires; expired ones are
// dropped on the way. The database is 0600: tokens are as private as the
// launches.
func (s *SQLite) PutToken(ctx context.Context, key, token string, expires time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM ags_tokens WHERE expires_at <= ?`, micros(time.Now())); err != nil {
		return s.wrap(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ags_tokens (cache_key, token, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (cache_key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at`,
		key, token, micros(expires)); err != nil {
		return s.wrap(err)
	}
	return s.wrap(tx.Commit())
}

// SetLineItem remembers the AGS line item found for a launch that named
// only its line item container, on the launch and on the session's
// undelivered scores, so later sends need no lookup.
func (s *SQLite) SetLineItem(ctx context.Context, launchID, sessionID int64, lineitem string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE launches SET lineitem = ? WHERE id = ? AND lineitem = ''`, lineitem, launchID); err != nil {
		return s.wrap(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE passbacks SET target_url = ? WHERE session_id = ? AND launch_id = ?
		AND target_url = '' AND protocol = 'ags'`, lineitem, sessionID, launchID); err != nil {
		return s.wrap(err)
	}
	return s.wrap(tx.Commit())
}

// CourseNotebooks implements Store.
func (s *SQLite) CourseNotebooks(ctx context.Context, platform, contextID string) ([]CourseNotebook, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT path, resource_link_id FROM course_notebooks
		WHERE platform = ? AND context_id = ? ORDER BY path, resource_link_id`, platform, contextID)
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
func (s *SQLite) LinkOpenings(ctx context.Context, platform, resourceLinkID string) ([]LinkOpening, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT username, opened, opened_file, next_signed FROM launches
		WHERE platform = ? AND resource_link_id = ? AND checkout != '' AND origin = ''
		GROUP BY username, opened, opened_file, next_signed ORDER BY username, opened LIMIT 100000`, platform, resourceLinkID)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []LinkOpening
	for rows.Next() {
		var o LinkOpening
		var file, signed int
		if err := rows.Scan(&o.Username, &o.Opened, &file, &signed); err != nil {
			return nil, s.wrap(err)
		}
		o.OpenedFile, o.Signed = file != 0, signed != 0
		out = append(out, o)
	}
	return out, s.wrap(rows.Err())
}

// LinkSessions implements Store.
func (s *SQLite) LinkSessions(ctx context.Context, checkout string) ([]Session, error) {
	// One grouped pass (a correlated subquery per session was quadratic
	// in the class size).
	rows, err := s.db.QueryContext(ctx, sessionSelect+` WHERE l.id IN (SELECT MAX(l2.id) FROM sessions s2
			JOIN launches l2 ON l2.id = s2.current_launch_id
			WHERE l2.checkout = ? AND l2.origin = '' GROUP BY s2.platform, s2.resource_link_id)
		ORDER BY s.id LIMIT 1000`, checkout)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, *sess)
	}
	return out, s.wrap(rows.Err())
}
