package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

const passbackCols = `id, session_id, launch_id, username, notebook, score, score_given, score_max, comment,
	protocol, target_url, sourcedid, consumer_key, result_data, submitted_at, status, attempts,
	next_attempt_at, last_error, http_status, created_at, updated_at, sent_at, lease_owner, lease_until,
	client_id, lineitems, resource_link_id`

func scanPassback(r scanner) (*Passback, error) {
	var p Passback
	var next, sent, lease sql.NullInt64
	var created, updated int64
	err := r.Scan(&p.ID, &p.SessionID, &p.LaunchID, &p.Username, &p.Notebook, &p.Score, &p.ScoreGiven,
		&p.ScoreMax, &p.Comment, &p.Protocol, &p.TargetURL, &p.SourcedID, &p.ConsumerKey, &p.ResultData,
		&p.SubmittedAt, &p.Status, &p.Attempts, &next, &p.LastError, &p.HTTPStatus, &created, &updated,
		&sent, &p.LeaseOwner, &lease, &p.ClientID, &p.LineItems, &p.ResourceLinkID)
	if err != nil {
		return nil, err
	}
	p.NextAttemptAt = nullMicros(next)
	p.SentAt = nullMicros(sent)
	p.LeaseUntil = nullMicros(lease)
	p.CreatedAt = fromMicros(created)
	p.UpdatedAt = fromMicros(updated)
	return &p, nil
}

// Enqueue implements Store. All rows commit together or not at all, and
// the commit is durable before Enqueue returns: that is the journal every
// later network attempt relies on.
func (s *SQLite) Enqueue(ctx context.Context, ps []*Passback) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO passbacks (session_id, launch_id, username, notebook, score,
		score_given, score_max, comment, protocol, target_url, sourcedid, consumer_key, result_data, submitted_at,
		status, created_at, updated_at, client_id, lineitems, resource_link_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return s.wrap(err)
	}
	defer stmt.Close()
	// Prepared once for the whole journal, not parsed again per row.
	supersede, err := tx.PrepareContext(ctx, supersedeSQL+` AND session_id = ?`)
	if err != nil {
		return s.wrap(err)
	}
	defer supersede.Close()
	for _, p := range ps {
		if p.CreatedAt.IsZero() {
			p.CreatedAt = time.Now()
		}
		if p.Protocol == "ags" {
			if err := secondAfterPrevious(ctx, tx, p); err != nil {
				return s.wrap(err)
			}
		}
		p.UpdatedAt = p.CreatedAt
		p.Status = StatusPending
		res, err := stmt.ExecContext(ctx, p.SessionID, p.LaunchID, p.Username, p.Notebook, p.Score, p.ScoreGiven,
			p.ScoreMax, p.Comment, p.Protocol, p.TargetURL, p.SourcedID, p.ConsumerKey, p.ResultData,
			p.SubmittedAt, p.Status, micros(p.CreatedAt), micros(p.CreatedAt), p.ClientID, p.LineItems, p.ResourceLinkID)
		if err != nil {
			return s.wrap(err)
		}
		p.ID, _ = res.LastInsertId()
		// The newest score of a session makes its older unsent ones moot.
		now := micros(time.Now())
		if _, err := supersede.ExecContext(ctx, now, now, p.SessionID); err != nil {
			return s.wrap(err)
		}
	}
	return s.wrap(tx.Commit())
}

// supersedeSQL marks every unsent row that has a newer row in its session
// as superseded, except rows whose lease is still held: those are on the
// wire and their holder will finish them. lease_until is kept: it is the end
// of the window in which the LMS may still act on an earlier attempt. Sending only the newest row per
// session, one at a time, is what makes the LMS end with the newest score.
// Arguments: now, now. The unary + keeps SQLite from walking the status
// index (every queued row) instead of the claimed sessions' rows: with a
// 20,000-row batch queued, each claim otherwise read the whole queue.
const supersedeSQL = `UPDATE passbacks SET status = 'superseded', updated_at = ?, lease_owner = ''
	WHERE (+status IN ('pending','retry') OR (+status = 'sending' AND lease_until < ?))
	AND id < (SELECT MAX(q.id) FROM passbacks q WHERE q.session_id = passbacks.session_id)`

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// expireDead hands the rows of owners that no longer run back to the queue
// at once: the dead sender's row may be sent again right away (the same
// score twice is harmless). lease_until stays, so no NEWER row of that
// session goes out while the LMS might still process the dead sender's
// request.
func expireDead(ctx context.Context, tx *sql.Tx, c Claim, now int64) error {
	if c.OwnerAlive == nil {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT lease_owner FROM passbacks
		WHERE status = 'sending' AND lease_owner != ?`, c.Owner)
	if err != nil {
		return err
	}
	var dead []any
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			rows.Close()
			return err
		}
		if !c.OwnerAlive(o) {
			dead = append(dead, o)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(dead) == 0 {
		return nil
	}
	// updated_at stays at the dead attempt's claim: a sync that started
	// since must still take the row (see Claim.SkipFailedSince).
	_, err = tx.ExecContext(ctx, `UPDATE passbacks SET status = 'retry', lease_owner = '', next_attempt_at = ?,
		last_error = 'the sending process died before the LMS answered'
		WHERE status = 'sending' AND lease_owner IN (`+placeholders(len(dead))+`)`, append([]any{now}, dead...)...)
	return err
}

// claimable is the condition for a row that may be leased now: unsent (or
// left in flight by an expired lease), the newest of its session, and no
// other row of its session on the wire or inside the window in which the
// LMS may still act on it (lease_until: kept after attempts whose outcome
// is unknown, cleared after known ones). Without that window a request
// the LMS processes late could land after, and overwrite, a newer score.
const claimable = `(p.status IN ('pending','retry') OR (p.status = 'sending' AND p.lease_until < :now))
	AND p.id = (SELECT MAX(q.id) FROM passbacks q WHERE q.session_id = p.session_id)
	AND NOT EXISTS (SELECT 1 FROM passbacks r WHERE r.session_id = p.session_id AND r.id != p.id
		AND r.lease_until >= :now)`

// claim leases rows in a transaction committed without its own fsync (see
// relaxed): on one machine a lease matters only while its sender runs, and
// a power cut that could lose it stops every sender and outlasts every
// lease; the journal it rests on was fsynced by Enqueue.
func (s *SQLite) claim(ctx context.Context, c Claim, ids []int64) ([]Passback, error) {
	if c.Owner == "" {
		return nil, errors.New("store: claim without owner")
	}
	var out []Passback
	err := s.relaxed(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.claimTx(ctx, tx, c, ids)
		return err
	})
	return out, err
}

func (s *SQLite) claimTx(ctx context.Context, tx *sql.Tx, c Claim, ids []int64) ([]Passback, error) {
	now := micros(c.Now)
	if err := expireDead(ctx, tx, c, now); err != nil {
		return nil, s.wrap(err)
	}
	// now is an integer we made, so it is spliced in rather than bound:
	// go-sqlite3 numbers named and positional arguments together.
	cond := strings.ReplaceAll(claimable, ":now", fmt.Sprint(now))
	var q string
	var args []any
	if ids != nil {
		if len(ids) == 0 {
			return nil, nil
		}
		for _, id := range ids {
			args = append(args, id)
		}
		in := placeholders(len(ids))
		if _, err := tx.ExecContext(ctx, supersedeSQL+` AND session_id IN
			(SELECT session_id FROM passbacks WHERE id IN (`+in+`))`, append([]any{now, now}, args...)...); err != nil {
			return nil, s.wrap(err)
		}
		q = `SELECT p.id FROM passbacks p WHERE p.id IN (` + in + `) AND ` + cond
	} else {
		// One bounded, index-ordered scan per status (index status, id),
		// so a claim costs about the rows it takes, not the queue's length.
		// Older rows of a session were superseded when the newer one was
		// journaled; the MAX(id) guard in claimable keeps this correct
		// regardless.
		limit := ""
		if c.Limit > 0 {
			limit = fmt.Sprintf(" LIMIT %d", c.Limit)
		}
		retry := `p.status = 'retry'`
		if !c.IgnoreBackoff {
			retry += fmt.Sprintf(` AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= %d)`, now)
		}
		if !c.SkipFailedSince.IsZero() {
			retry += fmt.Sprintf(` AND p.updated_at < %d`, micros(c.SkipFailedSince))
		}
		var parts []string
		for _, st := range []string{`p.status = 'pending'`, retry, fmt.Sprintf(`p.status = 'sending' AND p.lease_until < %d`, now)} {
			parts = append(parts, `SELECT id FROM (SELECT p.id AS id FROM passbacks p WHERE `+st+` AND `+cond+` ORDER BY p.id`+limit+`)`)
		}
		q = `SELECT id FROM (` + strings.Join(parts, " UNION ALL ") + `) ORDER BY id` + limit
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	var picked []any
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, s.wrap(err)
		}
		picked = append(picked, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	if len(picked) == 0 {
		return nil, nil
	}
	in := placeholders(len(picked))
	if ids == nil {
		// Tidy the claimed sessions: older rows left unsent (an expired
		// lease, say) will never be sent now.
		if _, err := tx.ExecContext(ctx, supersedeSQL+` AND session_id IN
			(SELECT session_id FROM passbacks WHERE id IN (`+in+`))`, append([]any{now, now}, picked...)...); err != nil {
			return nil, s.wrap(err)
		}
	}
	_, err = tx.ExecContext(ctx, `UPDATE passbacks SET status = 'sending', lease_owner = ?, lease_until = ?,
		attempts = attempts + 1, updated_at = ? WHERE id IN (`+in+`)`,
		append([]any{c.Owner, micros(c.LeaseUntil), now}, picked...)...)
	if err != nil {
		return nil, s.wrap(err)
	}
	return s.listTx(ctx, tx, `SELECT `+passbackCols+` FROM passbacks WHERE id IN (`+in+`) ORDER BY id`, picked...)
}

// ClaimIDs implements Store.
func (s *SQLite) ClaimIDs(ctx context.Context, c Claim, ids []int64) ([]Passback, error) {
	if ids == nil {
		ids = []int64{}
	}
	return s.claim(ctx, c, ids)
}

// ClaimDue implements Store.
func (s *SQLite) ClaimDue(ctx context.Context, c Claim) ([]Passback, error) {
	return s.claim(ctx, c, nil)
}

// Complete implements Store. Outcomes are committed without an fsync of
// their own (see relaxed): callers hand in groups of them, and losing the
// last ones to a power cut only sends those scores again.
func (s *SQLite) Complete(ctx context.Context, owner string, now time.Time, results map[int64]Result) error {
	if len(results) == 0 {
		return nil
	}
	for id, r := range results {
		if !completable(r.Status) {
			return fmt.Errorf("store: cannot complete passback %d with status %q", id, r.Status)
		}
	}
	return s.relaxed(ctx, func(tx *sql.Tx) error {
		n := micros(now)
		// One prepared statement for the whole group, not one parse per
		// row: a group holds hundreds of outcomes. keepLease keeps the lease
		// end as the in-flight window when the LMS may have the request but
		// did not answer; unattempted takes back the claim's count of an
		// attempt for a row handed back unsent. The owner check makes a lost
		// lease harmless: if our lease expired and another process took the
		// row, its outcome is the one kept.
		st, err := tx.PrepareContext(ctx, `UPDATE passbacks SET status = ?, last_error = ?, http_status = ?,
			next_attempt_at = ?, sent_at = COALESCE(?, sent_at), lease_owner = '',
			lease_until = CASE WHEN ? THEN lease_until END,
			attempts = CASE WHEN ? THEN MAX(attempts - 1, 0) ELSE attempts END, updated_at = ?
			WHERE id = ? AND status = 'sending' AND lease_owner = ?`)
		if err != nil {
			return s.wrap(err)
		}
		defer st.Close()
		for id, r := range results {
			var next, sent any
			keepLease := false
			switch r.Status {
			case StatusSent:
				sent = n
			case StatusRetry:
				next = micros(r.NextTry)
				keepLease = r.Uncertain
			}
			if _, err := st.ExecContext(ctx, r.Status, r.Message, r.HTTPStatus, next, sent, keepLease, r.Unattempted, n, id, owner); err != nil {
				return s.wrap(err)
			}
		}
		return nil
	})
}

// completable says whether an attempt may end with status st.
func completable(st string) bool {
	switch st {
	case StatusSent, StatusRetry, StatusRejected, StatusSuperseded:
		return true
	}
	return false
}

func (s *SQLite) listTx(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]Passback, error) {
	var rows *sql.Rows
	var err error
	if tx != nil {
		rows, err = tx.QueryContext(ctx, q, args...)
	} else {
		rows, err = s.db.QueryContext(ctx, q, args...)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Passback
	for rows.Next() {
		p, err := scanPassback(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, *p)
	}
	return out, s.wrap(rows.Err())
}

// Passback implements Store.
func (s *SQLite) Passback(ctx context.Context, id int64) (*Passback, error) {
	p, err := scanPassback(s.db.QueryRowContext(ctx, `SELECT `+passbackCols+` FROM passbacks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return p, s.wrap(err)
}

// ListPassbacks implements Store.
func (s *SQLite) ListPassbacks(ctx context.Context, f PassbackFilter) ([]Passback, error) {
	q := `SELECT ` + passbackCols + ` FROM passbacks`
	var where []string
	var args []any
	if len(f.Statuses) > 0 {
		where = append(where, `status IN (`+placeholders(len(f.Statuses))+`)`)
		for _, st := range f.Statuses {
			args = append(args, st)
		}
	}
	if f.Username != "" {
		where = append(where, `username = ?`)
		args = append(args, f.Username)
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return s.listTx(ctx, nil, q, args...)
}

// secondAfterPrevious keeps AGS score timestamps of a session strictly
// increasing at whole-second resolution: Moodle compares timestamps to the
// second and refuses an equal one (409), so a newer score created in the
// same second as the previous one would be refused as stale. The timestamp
// moves forward by under a second per score created that fast, and never
// more than maxBump ahead of the creation time.
func secondAfterPrevious(ctx context.Context, tx *sql.Tx, p *Passback) error {
	const maxBump = 20 * time.Second
	var prev sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(created_at) FROM passbacks WHERE session_id = ? AND protocol = 'ags'`,
		p.SessionID).Scan(&prev); err != nil {
		return err
	}
	if !prev.Valid {
		return nil
	}
	last := fromMicros(prev.Int64).Truncate(time.Second)
	if p.CreatedAt.Truncate(time.Second).After(last) {
		return nil
	}
	bumped := last.Add(time.Second).Add(p.CreatedAt.Sub(p.CreatedAt.Truncate(time.Second)))
	if bumped.Sub(p.CreatedAt) <= maxBump {
		p.CreatedAt = bumped
	}
	return nil
}
