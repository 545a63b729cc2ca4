package store

import (
	"context"
	"database/sql"
	"time"
)

// OutboxStats implements Store. The counts come from the (status, id)
// index; the oldest unsent row is found among the few unsent ones.
func (s *SQLite) OutboxStats(ctx context.Context) (OutboxStats, error) {
	st := newOutboxStats()
	rows, err := s.db.QueryContext(ctx, `SELECT status, COUNT(*) FROM passbacks GROUP BY status`)
	if err != nil {
		return st, s.wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return st, s.wrap(err)
		}
		st.Statuses[name] = n
	}
	if err := rows.Err(); err != nil {
		return st, s.wrap(err)
	}
	rows.Close()
	var oldest, last sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(created_at) FROM passbacks WHERE status IN (?, ?, ?)`,
		unsentStatuses[0], unsentStatuses[1], unsentStatuses[2]).Scan(&oldest); err != nil {
		return st, s.wrap(err)
	}
	if oldest.Valid {
		st.OldestUnsent = fromMicros(oldest.Int64)
	}
	err = s.db.QueryRowContext(ctx, `SELECT finished_at FROM runs WHERE name = ?`, runSync).Scan(&last)
	if err != nil && err != sql.ErrNoRows {
		return st, s.wrap(err)
	}
	if last.Valid {
		st.LastSync = fromMicros(last.Int64)
	}
	return st, nil
}

// SyncFinished implements Store. A clock that went back never makes the
// last sync older than one already recorded.
func (s *SQLite) SyncFinished(ctx context.Context, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO runs (name, finished_at) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET finished_at = MAX(runs.finished_at, excluded.finished_at)`, runSync, micros(at))
	return s.wrap(err)
}
