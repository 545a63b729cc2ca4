package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

const pgSubmissionCols = `id, username, session_id, launch_id, path, assignment, grader, octet_length(content), status, attempts,
	score, out_of, passback_id, reason, output, lease_owner, created_at, updated_at, started_at, finished_at`

func scanPGSubmission(r pgx.Row) (*Submission, error) {
	var s Submission
	if err := r.Scan(&s.ID, &s.Username, &s.SessionID, &s.LaunchID, &s.Path, &s.Assignment, &s.Grader, &s.Size,
		&s.Status, &s.Attempts, &s.Score, &s.OutOf, &s.PassbackID, &s.Reason, &s.Output, &s.LeaseOwner,
		&s.CreatedAt, &s.UpdatedAt, &s.StartedAt, &s.FinishedAt); err != nil {
		return nil, err
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return &s, nil
}

// AddSubmission implements Store. A transaction-scoped advisory lock per
// student (and one for the queue's size) makes the limits hold for
// services on several hosts.
func (s *Postgres) AddSubmission(ctx context.Context, sub *Submission, lim SubmissionLimits) error {
	now := lim.Now.UTC()
	var id int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('ltigrade-submit', 0)),
			pg_advisory_xact_lock(hashtextextended('ltigrade-submit:' || $1, 0))`, sub.Username); err != nil {
			return err
		}
		if lim.Interval > 0 {
			var last *time.Time
			if err := tx.QueryRow(ctx, `SELECT MAX(created_at) FROM submissions WHERE username = $1`, sub.Username).Scan(&last); err != nil {
				return err
			}
			if last != nil {
				if wait := last.Add(lim.Interval).Sub(now); wait > 0 {
					return &TooSoonError{Wait: wait}
				}
			}
		}
		if lim.MaxQueued > 0 {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM submissions WHERE status IN ('queued', 'grading')`).Scan(&n); err != nil {
				return err
			}
			if n >= lim.MaxQueued {
				return ErrQueueFull
			}
		}
		return tx.QueryRow(ctx, `INSERT INTO submissions (username, session_id, launch_id, path, assignment, grader, content,
			status, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,'queued',$8,$8) RETURNING id`,
			sub.Username, sub.SessionID, sub.LaunchID, pgText(sub.Path), pgText(sub.Assignment), sub.Grader, sub.Content, now).Scan(&id)
	})
	var soon *TooSoonError
	if errors.As(err, &soon) || errors.Is(err, ErrQueueFull) {
		return err
	}
	if err != nil {
		return s.wrap(err)
	}
	sub.ID, sub.Status, sub.CreatedAt, sub.UpdatedAt, sub.Size = id, SubmissionQueued, now, now, len(sub.Content)
	return nil
}

// ClaimSubmission implements Store.
func (s *Postgres) ClaimSubmission(ctx context.Context, owner string, now time.Time, alive func(string) bool) (*Submission, error) {
	var out *Submission
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = nil
		// One claimer at a time: claims are rare (one per grading), and
		// "one grading per student" needs the whole picture.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('ltigrade-submit-claim', 0))`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, lease_owner FROM submissions WHERE status = 'grading'`)
		if err != nil {
			return err
		}
		var dead []int64
		for rows.Next() {
			var id int64
			var o string
			if err := rows.Scan(&id, &o); err != nil {
				rows.Close()
				return err
			}
			if o != owner && alive != nil && !alive(o) {
				dead = append(dead, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(dead) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE submissions SET status = 'queued', lease_owner = '', updated_at = $1 WHERE id = ANY($2)`, now, dead); err != nil {
				return err
			}
		}
		var id int64
		err = tx.QueryRow(ctx, `SELECT id FROM submissions s WHERE status = 'queued'
			AND NOT EXISTS (SELECT 1 FROM submissions g WHERE g.username = s.username AND g.status = 'grading')
			ORDER BY id LIMIT 1`).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE submissions SET status = 'grading', lease_owner = $1, attempts = attempts + 1,
			started_at = $2, updated_at = $2 WHERE id = $3`, owner, now, id); err != nil {
			return err
		}
		sub, err := scanPGSubmission(tx.QueryRow(ctx, `SELECT `+pgSubmissionCols+` FROM submissions WHERE id = $1`, id))
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT content FROM submissions WHERE id = $1`, id).Scan(&sub.Content); err != nil {
			return err
		}
		out = sub
		return nil
	})
	return out, s.wrap(err)
}

// FinishSubmission implements Store.
func (s *Postgres) FinishSubmission(ctx context.Context, id int64, owner string, r SubmissionResult) error {
	switch r.Status {
	case SubmissionGraded, SubmissionFailed, SubmissionQueued:
	default:
		return fmt.Errorf("store: submission status %q", r.Status)
	}
	var fin *time.Time
	if r.Status != SubmissionQueued {
		t := r.Now.UTC()
		fin = &t
	}
	_, err := s.pool.Exec(ctx, `UPDATE submissions SET status = $1, score = $2, out_of = $3, passback_id = $4, reason = $5,
		output = $6, lease_owner = '', updated_at = $7, finished_at = $8 WHERE id = $9 AND status = 'grading' AND lease_owner = $10`,
		r.Status, r.Score, r.OutOf, r.PassbackID, pgText(r.Reason), pgText(r.Output), r.Now.UTC(), fin, id, owner)
	return s.wrap(err)
}

// Submission implements Store.
func (s *Postgres) Submission(ctx context.Context, id int64) (*Submission, error) {
	sub, err := scanPGSubmission(s.pool.QueryRow(ctx, `SELECT `+pgSubmissionCols+` FROM submissions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return sub, s.wrap(err)
}

// ListSubmissions implements Store.
func (s *Postgres) ListSubmissions(ctx context.Context, f SubmissionFilter) ([]Submission, error) {
	q := `SELECT ` + pgSubmissionCols + ` FROM submissions`
	var where []string
	var args []any
	if f.Username != "" {
		args = append(args, f.Username)
		where = append(where, fmt.Sprintf("username = $%d", len(args)))
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Submission
	for rows.Next() {
		sub, err := scanPGSubmission(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, *sub)
	}
	return out, s.wrap(rows.Err())
}
