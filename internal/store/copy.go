package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/jackc/pgx/v5"
)

// CopyStats says what CopySQLite found and added, per table.
type CopyStats struct {
	Tables []TableCopy `json:"tables"`
}

// TableCopy is one table of a copy: rows in the SQLite file, rows added to
// PostgreSQL (the rest were there from an earlier copy), and whether the
// target then holds every source row (checked by id and content).
type TableCopy struct {
	Table    string `json:"table"`
	Source   int64  `json:"source_rows"`
	Added    int64  `json:"added"`
	Verified bool   `json:"verified"`
}

// ErrCopyConflict: the target holds other rows under the ids of the
// source's (it is not empty and not an earlier copy of the same file).
var ErrCopyConflict = errors.New("store: the target database holds different rows with the same ids")

// copyTable is how one table moves: the SQLite query (columns in the order
// of cols), how to turn a SQLite row into PostgreSQL values, and the
// columns that must agree between a row already in the target and the
// source's row of the same id.
type copyTable struct {
	name  string
	cols  []string
	query string
	conv  func(vals []any) []any
	key   string // the primary key (for tables without id)
	same  []string
}

func micro(v any) any {
	switch x := v.(type) {
	case int64:
		return fromMicros(x)
	case nil:
		return nil
	}
	return v
}

func boolOf(v any) any {
	if x, ok := v.(int64); ok {
		return x != 0
	}
	return v
}

func bytesOf(v any) any {
	switch x := v.(type) {
	case string:
		return []byte(x)
	case nil:
		return []byte{}
	}
	return v
}

var copyTables = []copyTable{
	{name: "sessions", cols: []string{"id", "platform", "lti_user_id", "resource_link_id", "username", "current_launch_id", "launched_at", "launch_count"},
		conv: func(v []any) []any { v[6] = micro(v[6]); return v }, key: "id",
		same: []string{"platform", "lti_user_id", "resource_link_id"}},
	{name: "launches", cols: []string{"id", "session_id", "username", "version", "platform", "client_id", "deployment_id",
		"lti_user_id", "resource_link_id", "resource_link_title", "context_id", "context_label", "context_title", "roles",
		"outcome_url", "sourcedid", "result_data_accepted", "submitted_at_accepted", "lineitem", "lineitems", "ags_scopes",
		"next_url", "repo", "checkout", "opened", "opened_file", "launched_at", "recorded_at", "auth_state", "next_signed",
		"unsigned_next", "pull_error", "origin"},
		conv: func(v []any) []any {
			v[17], v[25], v[29] = boolOf(v[17]), boolOf(v[25]), boolOf(v[29])
			v[26], v[27], v[28] = micro(v[26]), micro(v[27]), bytesOf(v[28])
			return v
		}, key: "id", same: []string{"session_id", "lti_user_id", "launched_at"}},
	{name: "course_notebooks", cols: []string{"platform", "context_id", "path", "resource_link_id"},
		conv: func(v []any) []any { return v }, key: "platform, context_id, path, resource_link_id"},
	{name: "passbacks", cols: []string{"id", "session_id", "launch_id", "username", "notebook", "score", "score_given",
		"score_max", "comment", "protocol", "target_url", "sourcedid", "consumer_key", "client_id", "lineitems",
		"resource_link_id", "result_data", "submitted_at", "status", "attempts", "next_attempt_at", "lease_owner",
		"lease_until", "last_error", "http_status", "created_at", "updated_at", "sent_at"},
		conv: func(v []any) []any {
			for _, i := range []int{20, 22, 25, 26, 27} {
				v[i] = micro(v[i])
			}
			return v
		}, key: "id", same: []string{"session_id", "score", "created_at"}},
	{name: "ags_tokens", cols: []string{"cache_key", "token", "expires_at"},
		conv: func(v []any) []any { v[2] = micro(v[2]); return v }, key: "cache_key"},
	{name: "lineitem_labels", cols: []string{"lineitem", "label", "checked_at"},
		conv: func(v []any) []any { v[2] = micro(v[2]); return v }, key: "lineitem"},
	// when each kind of run (a full sync) last finished: the metrics'
	// last-sync figure
	{name: "runs", cols: []string{"name", "finished_at"},
		conv: func(v []any) []any { v[1] = micro(v[1]); return v }, key: "name"},
}

// CopySQLite copies a SQLite store (launches, sessions, course notebooks,
// outbox, AGS token cache) into dst, a PostgreSQL store, in one
// transaction: rows keep their ids (scores in the outbox keep pointing at
// their sessions, and the ordering by id keeps meaning "newer"), rows
// already present from an earlier copy are left as they are, and the copy
// commits only if afterwards every source row is in the target with the
// same content. Running it twice is harmless. The file is migrated to the
// current schema first, like any open.
func CopySQLite(ctx context.Context, path string, dst Store) (CopyStats, error) {
	var st CopyStats
	pg, ok := dst.(*Postgres)
	if !ok {
		return st, errors.New("store: the database to copy into must be PostgreSQL (a postgres:// URL)")
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("store: %s does not exist", path)
	}
	src, err := openSQLite(path, options{})
	if err != nil {
		return st, err
	}
	defer src.Close()
	err = pg.inTx(ctx, func(tx pgx.Tx) error {
		st = CopyStats{}
		for _, t := range copyTables {
			tc, err := copyOne(ctx, src, tx, t)
			if err != nil {
				return err
			}
			st.Tables = append(st.Tables, tc)
		}
		// New rows must get ids after the copied ones.
		for _, t := range []string{"sessions", "launches", "passbacks"} {
			if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('`+t+`', 'id'),
				GREATEST((SELECT COALESCE(MAX(id), 0) FROM `+t+`), 1))`); err != nil {
				return err
			}
		}
		return nil
	})
	return st, err
}

func copyOne(ctx context.Context, src *SQLite, tx pgx.Tx, t copyTable) (TableCopy, error) {
	tc := TableCopy{Table: t.name}
	tmp := "copy_" + t.name
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE `+tmp+` (LIKE `+t.name+`) ON COMMIT DROP`); err != nil {
		return tc, err
	}
	rows, err := src.db.QueryContext(ctx, `SELECT `+joinCols(t.cols, "")+` FROM `+t.name)
	if err != nil {
		return tc, src.wrap(err)
	}
	defer rows.Close()
	n, err := tx.CopyFrom(ctx, pgx.Identifier{tmp}, t.cols, &sqliteRows{rows: rows, n: len(t.cols), conv: t.conv})
	if err != nil {
		return tc, fmt.Errorf("copying %s: %w", t.name, err)
	}
	tc.Source = n
	var bad int64
	if len(t.same) > 0 {
		cond := ""
		for _, c := range t.same {
			cond += " OR x." + c + " IS DISTINCT FROM y." + c
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+t.name+` x JOIN `+tmp+` y USING (id) WHERE false`+cond).Scan(&bad); err != nil {
			return tc, err
		}
		if bad > 0 {
			return tc, fmt.Errorf("%w: %d rows of %s differ; copy into an empty database, or one holding an earlier copy of this file", ErrCopyConflict, bad, t.name)
		}
	}
	tag, err := tx.Exec(ctx, `INSERT INTO `+t.name+` (`+joinCols(t.cols, "")+`) SELECT `+joinCols(t.cols, "")+` FROM `+tmp+
		` ON CONFLICT (`+t.key+`) DO NOTHING`)
	if err != nil {
		return tc, fmt.Errorf("copying %s: %w", t.name, err)
	}
	tc.Added = tag.RowsAffected()
	var present int64
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+t.name+` JOIN `+tmp+` USING (`+t.key+`)`).Scan(&present); err != nil {
		return tc, err
	}
	if present != tc.Source {
		return tc, fmt.Errorf("store: copy of %s: %d rows in the file, %d of them in the target after the copy", t.name, tc.Source, present)
	}
	tc.Verified = true
	return tc, nil
}

func joinCols(cols []string, prefix string) string {
	s := ""
	for i, c := range cols {
		if i > 0 {
			s += ", "
		}
		s += prefix + c
	}
	return s
}

// sqliteRows feeds SQLite rows to COPY.
type sqliteRows struct {
	rows *sql.Rows
	n    int
	conv func([]any) []any
}

func (r *sqliteRows) Next() bool { return r.rows.Next() }

func (r *sqliteRows) Values() ([]any, error) {
	vals := make([]any, r.n)
	ptrs := make([]any, r.n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	for i, v := range vals {
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		if str, ok := v.(string); ok {
			vals[i] = pgText(str)
		}
	}
	return r.conv(vals), nil
}

func (r *sqliteRows) Err() error { return r.rows.Err() }
