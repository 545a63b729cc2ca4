package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

const submissionCols = `id, username, session_id, launch_id, path, assignment, grader, length(content), status, attempts,
	score, out_of, passback_id, reason, output, lease_owner, created_at, updated_at, started_at, finished_at`

func scanSubmission(r scanner) (*Submission, error) {
	var s Submission
	var score, outOf sql.NullFloat64
	var ca, ua int64
	var sa, fa sql.NullInt64
	if err := r.Scan(&s.ID, &s.Username, &s.SessionID, &s.LaunchID, &s.Path, &s.Assignment, &s.Grader, &s.Size,
		&s.Status, &s.Attempts, &score, &outOf, &s.PassbackID, &s.Reason, &s.Output, &s.LeaseOwner, &ca, &ua, &sa, &fa); err != nil {
		return nil, err
	}
	if score.Valid {
		s.Score = &score.Float64
	}
	if outOf.Valid {
		s.OutOf = &outOf.Float64
	}
	s.CreatedAt, s.UpdatedAt = fromMicros(ca), fromMicros(ua)
	s.StartedAt, s.FinishedAt = nullMicros(sa), nullMicros(fa)
	return &s, nil
}

// AddSubmission implements Store.
func (s *SQLite) AddSubmission(ctx context.Context, sub *Submission, lim SubmissionLimits) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	now := lim.Now
	if lim.Interval > 0 {
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(created_at) FROM submissions WHERE username = ?`, sub.Username).Scan(&last); err != nil {
			return s.wrap(err)
		}
		if last.Valid {
			if wait := fromMicros(last.Int64).Add(lim.Interval).Sub(now); wait > 0 {
				return &TooSoonError{Wait: wait}
			}
		}
	}
	if lim.MaxQueued > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM submissions WHERE status IN ('queued', 'grading')`).Scan(&n); err != nil {
			return s.wrap(err)
		}
		if n >= lim.MaxQueued {
			return ErrQueueFull
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO submissions (username, session_id, launch_id, path, assignment, grader,
		content, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)`,
		sub.Username, sub.SessionID, sub.LaunchID, sub.Path, sub.Assignment, sub.Grader, sub.Content, SubmissionQueued,
		micros(now), micros(now))
	if err != nil {
		return s.wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return s.wrap(err)
	}
	sub.ID, _ = res.LastInsertId()
	sub.Status, sub.CreatedAt, sub.UpdatedAt, sub.Size = SubmissionQueued, now.UTC(), now.UTC(), len(sub.Content)
	return nil
}

// ClaimSubmission implements Store.
func (s *SQLite) ClaimSubmission(ctx context.Context, owner string, now time.Time, alive func(string) bool) (*Submission, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer tx.Rollback()
	// A grading whose owner is gone (a crashed or restarted service) goes
	// back to the queue: the submission is re-graded, never lost.
	rows, err := tx.QueryContext(ctx, `SELECT id, lease_owner FROM submissions WHERE status = 'grading'`)
	if err != nil {
		return nil, s.wrap(err)
	}
	var dead []int64
	for rows.Next() {
		var id int64
		var o string
		if err := rows.Scan(&id, &o); err != nil {
			rows.Close()
			return nil, s.wrap(err)
		}
		if o != owner && alive != nil && !alive(o) {
			dead = append(dead, id)
		}
	}
	rows.Close()
	for _, id := range dead {
		if _, err := tx.ExecContext(ctx, `UPDATE submissions SET status = 'queued', lease_owner = '', updated_at = ? WHERE id = ?`, micros(now), id); err != nil {
			return nil, s.wrap(err)
		}
	}
	// One grading at a time per student.
	var id int64
	err = tx.QueryRowContext(ctx, `SELECT id FROM submissions s WHERE status = 'queued'
		AND NOT EXISTS (SELECT 1 FROM submissions g WHERE g.username = s.username AND g.status = 'grading')
		ORDER BY id LIMIT 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, s.wrap(tx.Commit())
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE submissions SET status = 'grading', lease_owner = ?, attempts = attempts + 1,
		started_at = ?, updated_at = ? WHERE id = ?`, owner, micros(now), micros(now), id); err != nil {
		return nil, s.wrap(err)
	}
	sub, err := scanSubmission(tx.QueryRowContext(ctx, `SELECT `+submissionCols+` FROM submissions WHERE id = ?`, id))
	if err != nil {
		return nil, s.wrap(err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT content FROM submissions WHERE id = ?`, id).Scan(&sub.Content); err != nil {
		return nil, s.wrap(err)
	}
	return sub, s.wrap(tx.Commit())
}

// FinishSubmission implements Store.
func (s *SQLite) FinishSubmission(ctx context.Context, id int64, owner string, r SubmissionResult) error {
	switch r.Status {
	case SubmissionGraded, SubmissionFailed, SubmissionQueued:
	default:
		return fmt.Errorf("store: submission status %q", r.Status)
	}
	var fin any
	if r.Status != SubmissionQueued {
		fin = micros(r.Now)
	}
	_, err := s.db.ExecContext(ctx, `UPDATE submissions SET status = ?, score = ?, out_of = ?, passback_id = ?, reason = ?,
		output = ?, lease_owner = '', updated_at = ?, finished_at = ? WHERE id = ? AND status = 'grading' AND lease_owner = ?`,
		r.Status, r.Score, r.OutOf, r.PassbackID, r.Reason, r.Output, micros(r.Now), fin, id, owner)
	return s.wrap(err)
}

// Submission implements Store.
func (s *SQLite) Submission(ctx context.Context, id int64) (*Submission, error) {
	sub, err := scanSubmission(s.db.QueryRowContext(ctx, `SELECT `+submissionCols+` FROM submissions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return sub, s.wrap(err)
}

// ListSubmissions implements Store.
func (s *SQLite) ListSubmissions(ctx context.Context, f SubmissionFilter) ([]Submission, error) {
	var where []string
	var args []any
	if f.Username != "" {
		where = append(where, "username = ?")
		args = append(args, f.Username)
	}
	q := `SELECT ` + submissionCols + ` FROM submissions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Submission
	for rows.Next() {
		sub, err := scanSubmission(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, *sub)
	}
	return out, s.wrap(rows.Err())
}
