package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Prober is what `ltigrade doctor` asks a store beyond the Store
// interface: whether this process may write to it, and which LMS outcome
// services its launches name. Both backends implement it.
type Prober interface {
	// CheckWritable makes a real write (a table created inside a
	// transaction that is then rolled back), so file modes, read-only
	// mounts, a missing folder for SQLite's -wal file and PostgreSQL grants
	// are all caught; nothing is left behind.
	CheckWritable(ctx context.Context) error
	// OutcomeURLs lists the distinct LTI 1.1 outcome service URLs of the
	// stored launches (at most limit).
	OutcomeURLs(ctx context.Context, limit int) ([]string, error)
}

const probeTable = "ltigrade_doctor_probe"

// CheckWritable implements Prober.
func (s *SQLite) CheckWritable(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE `+probeTable+` (x INTEGER)`); err != nil {
		return s.wrap(err)
	}
	return nil
}

// OutcomeURLs implements Prober.
func (s *SQLite) OutcomeURLs(ctx context.Context, limit int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT outcome_url FROM launches WHERE outcome_url != '' ORDER BY outcome_url LIMIT ?`, limit)
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
		out = append(out, u)
	}
	return out, s.wrap(rows.Err())
}

// CheckWritable implements Prober.
func (s *Postgres) CheckWritable(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback(ctx)
	// Every table of ltigrade's schema is written by some command: taking
	// the lock an INSERT takes needs the same grants, and changes no row.
	// The tables are listed from the catalog, so a later migration's table
	// is checked too.
	rows, err := tx.Query(ctx, `SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`)
	if err != nil {
		return s.wrap(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return s.wrap(err)
	}
	if len(tables) == 0 {
		return s.wrap(errors.New("no ltigrade tables in the current schema"))
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(tables, ", ")+` IN ROW EXCLUSIVE MODE NOWAIT`); err != nil {
		return s.wrap(fmt.Errorf("cannot write to ltigrade's tables: %w", err))
	}
	return nil
}

// OutcomeURLs implements Prober.
func (s *Postgres) OutcomeURLs(ctx context.Context, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT outcome_url FROM launches WHERE outcome_url <> '' ORDER BY outcome_url LIMIT $1`, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, s.wrap(err)
}
