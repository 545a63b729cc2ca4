package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const pgPassbackCols = `id, session_id, launch_id, username, notebook, score, score_given, score_max, comment,
	protocol, target_url, sourcedid, consumer_key, result_data, submitted_at, status, attempts,
	next_attempt_at, last_error, http_status, created_at, updated_at, sent_at, lease_owner, lease_until,
	client_id, lineitems, resource_link_id`

func scanPGPassback(r pgx.Row) (*Passback, error) {
	var p Passback
	err := r.Scan(&p.ID, &p.SessionID, &p.LaunchID, &p.Username, &p.Notebook, &p.Score, &p.ScoreGiven,
		&p.ScoreMax, &p.Comment, &p.Protocol, &p.TargetURL, &p.SourcedID, &p.ConsumerKey, &p.ResultData,
		&p.SubmittedAt, &p.Status, &p.Attempts, &p.NextAttemptAt, &p.LastError, &p.HTTPStatus, &p.CreatedAt,
		&p.UpdatedAt, &p.SentAt, &p.LeaseOwner, &p.LeaseUntil, &p.ClientID, &p.LineItems, &p.ResourceLinkID)
	if err != nil {
		return nil, err
	}
	for _, t := range []**time.Time{&p.NextAttemptAt, &p.SentAt, &p.LeaseUntil} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return &p, nil
}

func collectPassbacks(rows pgx.Rows) ([]Passback, error) {
	defer rows.Close()
	var out []Passback
	for rows.Next() {
		p, err := scanPGPassback(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, rows.Err()
}

// pgSupersede is supersedeSQL with "now" the expression NOW (see at);
// callers add the sessions it applies to. The status is compared after a
// concatenation with the empty string, so that no index on it can serve
// the condition: with a 20,000-row batch queued the planner otherwise walked
// every pending row (the status index, ORed with passbacks_leased) for
// each claim of 256, 325 ms a claim, instead of the claimed sessions' few
// rows by passbacks_session.
const pgSupersede = `UPDATE passbacks p SET status = 'superseded', updated_at = statement_timestamp(), lease_owner = ''
	WHERE ((p.status || '') IN ('pending','retry') OR ((p.status || '') = 'sending' AND p.lease_until < NOW))
	AND p.id < (SELECT MAX(q.id) FROM passbacks q WHERE q.session_id = p.session_id)`

// pgClaimable is claimable with "now" the expression NOW.
const pgClaimable = `(p.status IN ('pending','retry') OR (p.status = 'sending' AND p.lease_until < NOW))
	AND p.id = (SELECT MAX(q.id) FROM passbacks q WHERE q.session_id = p.session_id)
	AND NOT EXISTS (SELECT 1 FROM passbacks r WHERE r.session_id = p.session_id AND r.id <> p.id
		AND r.lease_until >= NOW)`

func withNow(q string) string { return strings.ReplaceAll(q, "NOW", "@now") }

// Enqueue implements Store: the rows commit together, durably (the
// journal), after the sessions are locked, so that the AGS timestamps of a
// session stay strictly increasing and the superseding sees every row.
func (s *Postgres) Enqueue(ctx context.Context, ps []*Passback) error {
	if len(ps) == 0 {
		return nil
	}
	created := make([]time.Time, len(ps))
	var sids, agsSids []int64
	for i, p := range ps {
		if p.CreatedAt.IsZero() {
			p.CreatedAt = time.Now()
		}
		created[i] = p.CreatedAt.UTC().Truncate(time.Microsecond)
		sids = append(sids, p.SessionID)
		if p.Protocol == "ags" {
			agsSids = append(agsSids, p.SessionID)
		}
	}
	sids, agsSids = sortedSessions(sids), sortedSessions(agsSids)
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockSessions(ctx, tx, sids); err != nil {
			return err
		}
		last := map[int64]time.Time{}
		if len(agsSids) > 0 {
			rows, err := tx.Query(ctx, `SELECT session_id, MAX(created_at) FROM passbacks
				WHERE session_id = ANY($1) AND protocol = 'ags' GROUP BY session_id`, agsSids)
			if err != nil {
				return err
			}
			for rows.Next() {
				var sid int64
				var t time.Time
				if err := rows.Scan(&sid, &t); err != nil {
					rows.Close()
					return err
				}
				last[sid] = t.UTC()
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `SELECT nextval('passbacks_id_seq') FROM generate_series(1, $1::int) ORDER BY 1`, len(ps))
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		n := len(ps)
		var (
			idA, sidA, lidA                   = make([]int64, n), make([]int64, n), make([]int64, n)
			given, max                        = make([]float64, n), make([]float64, n)
			user, nb, score, comment, proto   = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			target, sourced, key, client, lis = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			rlink, rdata, subm                = make([]string, n), make([]string, n), make([]string, n)
			createdA                          = make([]time.Time, n)
		)
		for i, p := range ps {
			p.CreatedAt = created[i]
			if p.Protocol == "ags" {
				prev, ok := last[p.SessionID]
				p.CreatedAt = nextAGSTime(prev, ok, p.CreatedAt)
				if !ok || p.CreatedAt.After(prev) {
					last[p.SessionID] = p.CreatedAt
				}
			}
			p.UpdatedAt = p.CreatedAt
			p.Status = StatusPending
			p.ID = ids[i]
			idA[i], sidA[i], lidA[i] = p.ID, p.SessionID, p.LaunchID
			given[i], max[i] = p.ScoreGiven, p.ScoreMax
			user[i], nb[i], score[i], comment[i], proto[i] = pgText(p.Username), pgText(p.Notebook), p.Score, pgText(p.Comment), p.Protocol
			target[i], sourced[i], key[i], client[i], lis[i] = pgText(p.TargetURL), pgText(p.SourcedID), pgText(p.ConsumerKey), pgText(p.ClientID), pgText(p.LineItems)
			rlink[i], rdata[i], subm[i] = pgText(p.ResourceLinkID), pgText(p.ResultData), p.SubmittedAt
			createdA[i] = p.CreatedAt
		}
		if _, err := tx.Exec(ctx, `INSERT INTO passbacks (id, session_id, launch_id, username, notebook, score,
			score_given, score_max, comment, protocol, target_url, sourcedid, consumer_key, client_id, lineitems,
			resource_link_id, result_data, submitted_at, status, created_at, updated_at)
			SELECT u.id, u.sid, u.lid, u.usr, u.nb, u.sc, u.g, u.m, u.cm, u.pr, u.tu, u.sd, u.ck, u.ci, u.li, u.rl, u.rd, u.sa,
				'pending', u.c, u.c FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
				$6::text[], $7::float8[], $8::float8[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
				$14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::timestamptz[])
				AS u(id, sid, lid, usr, nb, sc, g, m, cm, pr, tu, sd, ck, ci, li, rl, rd, sa, c)`,
			idA, sidA, lidA, user, nb, score, given, max, comment, proto, target, sourced, key, client, lis,
			rlink, rdata, subm, createdA); err != nil {
			return err
		}
		// The newest score of a session makes its older unsent ones moot.
		_, err = tx.Exec(ctx, strings.ReplaceAll(pgSupersede, "NOW", "statement_timestamp()")+` AND p.session_id = ANY($1)`, sids)
		return err
	})
}

// nextAGSTime is secondAfterPrevious without the query: prev is the
// session's latest AGS timestamp so far (if ok).
func nextAGSTime(prev time.Time, ok bool, created time.Time) time.Time {
	const maxBump = 20 * time.Second
	if !ok {
		return created
	}
	last := prev.Truncate(time.Second)
	if created.Truncate(time.Second).After(last) {
		return created
	}
	bumped := last.Add(time.Second).Add(created.Sub(created.Truncate(time.Second)))
	if bumped.Sub(created) <= maxBump {
		return bumped
	}
	return created
}

// ownersSQL lists the other owners with rows on the wire, for
// Claim.OwnerAlive.
const ownersSQL = `SELECT DISTINCT lease_owner FROM passbacks WHERE status = 'sending' AND lease_owner <> $1`

func collectOwners(rows pgx.Rows, c Claim) ([]string, error) {
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var dead []string
	for _, o := range owners {
		if !c.OwnerAlive(o) {
			dead = append(dead, o)
		}
	}
	return dead, nil
}

// expireDead is the PostgreSQL expireDead: its own short transaction, run
// when a claim found owners that no longer run, and touching only rows
// nobody has locked (an owner that is finishing its row wins).
func (s *Postgres) expireDead(ctx context.Context, c Claim, dead []string) error {
	db, err := s.dbClock(ctx)
	if err != nil {
		return err
	}
	// lease_until stays (the window in which the LMS may still act on the
	// dead sender's request); updated_at stays (see Claim.SkipFailedSince).
	return s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `UPDATE passbacks SET status = 'retry', lease_owner = '', next_attempt_at = $2,
			last_error = 'the sending process died before the LMS answered'
			WHERE id IN (SELECT id FROM passbacks WHERE status = 'sending' AND lease_owner = ANY($1) FOR UPDATE SKIP LOCKED)`,
			dead, db(c.Now))
		return err
	})
}

// errDeadOwners restarts a claim after its owners check found dead ones.
var errDeadOwners = errors.New("dead owners")

// claimArgs are the named arguments of the claim statements.
func claimArgs(c Claim, db func(time.Time) time.Time, limit int) pgx.NamedArgs {
	args := pgx.NamedArgs{"now": db(c.Now), "owner": c.Owner, "lease": db(c.LeaseUntil), "limit": limit}
	if !c.SkipFailedSince.IsZero() {
		args["skip"] = db(c.SkipFailedSince)
	}
	return args
}

// queueTake queues the statements that lease the rows among @ids that are
// still claimable (and match cond), under the locks of their sessions:
// first the older unsent rows of those sessions are superseded, then the
// rows leased in one statement. Pipelined after the statement that takes
// the locks, each runs once the locks are held, with a snapshot taken
// then, so it sees every commit of the locks' previous holders.
func queueTake(b *pgx.Batch, args pgx.NamedArgs, cond string) {
	if cond != "" {
		cond = " AND (" + cond + ")"
	}
	b.Queue(withNow(pgSupersede)+`
		AND p.session_id IN (SELECT session_id FROM passbacks WHERE id = ANY(@ids))`, args)
	b.Queue(`UPDATE passbacks p SET status = 'sending', lease_owner = @owner, lease_until = @lease,
		attempts = p.attempts + 1, updated_at = @now
		WHERE p.id = ANY(@ids) AND `+withNow(pgClaimable)+cond+`
		RETURNING `+pgPassbackCols, args)
}

// readTake reads the results of queueTake's statements.
func readTake(br pgx.BatchResults) ([]Passback, error) {
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	out, err := collectPassbacks(rows)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Passback) int { return int(a.ID - b.ID) })
	return out, nil
}

// claimConn runs f on a connection of its own; f sends BEGIN and COMMIT in
// its batches (a claim is one or two round trips), and the transaction is
// rolled back unless f succeeds. A dead owner found by f's owners check is
// voided (expireDead) and the claim run again, once.
func (s *Postgres) claimConn(ctx context.Context, c Claim, f func(conn *pgxpool.Conn, checkOwners bool) ([]Passback, error)) ([]Passback, error) {
	var out []Passback
	check := c.OwnerAlive != nil
	for {
		var dead []string
		err := s.retry(ctx, func() error {
			conn, err := s.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer conn.Release()
			out, err = f(conn, check)
			if err != nil {
				// Leave no transaction open on a connection going back to
				// the pool (a failed batch may end inside one).
				conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
				var de *deadOwners
				if errors.As(err, &de) {
					dead = de.owners
					return nil
				}
			}
			return err
		})
		if err != nil || dead == nil {
			return out, err
		}
		if err := s.expireDead(ctx, c, dead); err != nil {
			return nil, err
		}
		check = false
	}
}

type deadOwners struct{ owners []string }

func (d *deadOwners) Error() string { return errDeadOwners.Error() }

// ClaimIDs implements Store, in one round trip: the owners check, BEGIN,
// the sessions' locks (it waits for them, in id order: a score racing a
// sync of the same session), the superseding, the lease, COMMIT.
func (s *Postgres) ClaimIDs(ctx context.Context, c Claim, ids []int64) ([]Passback, error) {
	if c.Owner == "" {
		return nil, errors.New("store: claim without owner")
	}
	if len(ids) == 0 {
		return nil, nil
	}
	db, err := s.dbClock(ctx)
	if err != nil {
		return nil, err
	}
	args := claimArgs(c, db, 0)
	args["ids"] = ids
	return s.claimConn(ctx, c, func(conn *pgxpool.Conn, checkOwners bool) ([]Passback, error) {
		b := &pgx.Batch{}
		if checkOwners {
			b.Queue(ownersSQL, c.Owner)
		}
		b.Queue(`BEGIN`)
		b.Queue(`SELECT s.id FROM sessions s WHERE s.id IN
			(SELECT session_id FROM passbacks WHERE id = ANY(@ids)) ORDER BY s.id FOR UPDATE OF s`, args)
		queueTake(b, args, "")
		b.Queue(`COMMIT`)
		br := conn.SendBatch(ctx, b)
		defer br.Close()
		if checkOwners {
			rows, err := br.Query()
			if err != nil {
				return nil, err
			}
			dead, err := collectOwners(rows, c)
			if err != nil {
				return nil, err
			}
			if len(dead) > 0 {
				return nil, &deadOwners{dead}
			}
		}
		for range 2 { // BEGIN, the locks
			if _, err := br.Exec(); err != nil {
				return nil, err
			}
		}
		out, err := readTake(br)
		if err != nil {
			return nil, err
		}
		if _, err := br.Exec(); err != nil { // COMMIT
			return nil, err
		}
		return out, br.Close()
	})
}

// ClaimDue implements Store, in two round trips. Candidates are found per
// status in id order, each query locking the sessions of the rows it
// returns with FOR UPDATE SKIP LOCKED, so concurrent syncs on several hosts
// take disjoint sessions without waiting; then the rows are checked again
// and leased (queueTake), and the transaction committed.
func (s *Postgres) ClaimDue(ctx context.Context, c Claim) ([]Passback, error) {
	if c.Owner == "" {
		return nil, errors.New("store: claim without owner")
	}
	db, err := s.dbClock(ctx)
	if err != nil {
		return nil, err
	}
	limit := c.Limit
	if limit <= 0 {
		limit = 1 << 30
	}
	retry := `p.status = 'retry'`
	if !c.IgnoreBackoff {
		retry += ` AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= @now)`
	}
	if !c.SkipFailedSince.IsZero() {
		retry += ` AND p.updated_at < @skip`
	}
	expired := `p.status = 'sending' AND p.lease_until < @now`
	args := claimArgs(c, db, limit)
	return s.claimConn(ctx, c, func(conn *pgxpool.Conn, checkOwners bool) ([]Passback, error) {
		b := &pgx.Batch{}
		if checkOwners {
			b.Queue(ownersSQL, c.Owner)
		}
		b.Queue(`BEGIN`)
		// Walk each status in id order by its index and stop at the limit,
		// even while the planner has no statistics of a freshly filled
		// queue (it would sort every queued row for each claim).
		b.Queue(`SET LOCAL enable_sort = off`)
		for _, st := range []string{`p.status = 'pending'`, retry, expired} {
			b.Queue(`SELECT c.id FROM (SELECT p.id, p.session_id FROM passbacks p WHERE `+st+` ORDER BY p.id OFFSET 0) c
				JOIN sessions s ON s.id = c.session_id
				WHERE c.id = (SELECT MAX(q.id) FROM passbacks q WHERE q.session_id = c.session_id)
				AND NOT EXISTS (SELECT 1 FROM passbacks r WHERE r.session_id = c.session_id AND r.id <> c.id AND r.lease_until >= @now)
				ORDER BY c.id LIMIT @limit FOR UPDATE OF s SKIP LOCKED`, args)
		}
		br := conn.SendBatch(ctx, b)
		if checkOwners {
			rows, err := br.Query()
			if err != nil {
				br.Close()
				return nil, err
			}
			dead, err := collectOwners(rows, c)
			if err == nil && len(dead) > 0 {
				err = &deadOwners{dead}
			}
			if err != nil {
				br.Close()
				return nil, err
			}
		}
		for range 2 { // BEGIN, SET
			if _, err := br.Exec(); err != nil {
				br.Close()
				return nil, err
			}
		}
		var picked []int64
		for range 3 {
			rows, err := br.Query()
			if err != nil {
				br.Close()
				return nil, err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				br.Close()
				return nil, err
			}
			picked = append(picked, ids...)
		}
		if err := br.Close(); err != nil {
			return nil, err
		}
		if len(picked) == 0 {
			_, err := conn.Exec(ctx, `COMMIT`)
			return nil, err
		}
		slices.Sort(picked)
		picked = picked[:min(len(picked), limit)]
		args := maps.Clone(args)
		args["ids"] = picked
		b = &pgx.Batch{}
		queueTake(b, args, `p.status = 'pending' OR (`+retry+`) OR (`+expired+`)`)
		b.Queue(`COMMIT`)
		br = conn.SendBatch(ctx, b)
		defer br.Close()
		out, err := readTake(br)
		if err != nil {
			return nil, err
		}
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		return out, br.Close()
	})
}

// Complete implements Store: every outcome of the group in one statement,
// committed with synchronous_commit off. Outcomes so share the WAL flush
// of whatever commits next (PostgreSQL's group commit), and a crash of the
// database server can lose only the last few, which are then sent again;
// the journal (Enqueue) and the claims stay synchronous.
func (s *Postgres) Complete(ctx context.Context, owner string, now time.Time, results map[int64]Result) error {
	if len(results) == 0 {
		return nil
	}
	n := len(results)
	ids := make([]int64, 0, n)
	for id, r := range results {
		if !completable(r.Status) {
			return fmt.Errorf("store: cannot complete passback %d with status %q", id, r.Status)
		}
		ids = append(ids, id)
	}
	// In id order, so two completers cannot deadlock on each other's rows.
	slices.Sort(ids)
	db, err := s.dbClock(ctx)
	if err != nil {
		return err
	}
	sts, msgs := make([]string, n), make([]string, n)
	codes := make([]int32, n)
	next := make([]time.Time, n)
	uncertain, unattempted := make([]bool, n), make([]bool, n)
	for i, id := range ids {
		r := results[id]
		sts[i], msgs[i], codes[i], uncertain[i], unattempted[i] = r.Status, r.Message, int32(r.HTTPStatus), r.Uncertain, r.Unattempted
		next[i] = db(r.NextTry)
		if next[i].IsZero() {
			next[i] = db(now)
		}
	}
	return s.retry(ctx, func() error {
		b := &pgx.Batch{}
		b.Queue(`BEGIN`)
		b.Queue(`SET LOCAL synchronous_commit = off`)
		// The owner check makes a lost lease harmless: if our lease expired
		// and another process took the row, its outcome is the one kept.
		b.Queue(`UPDATE passbacks p SET status = v.st, last_error = v.msg, http_status = v.code,
			next_attempt_at = CASE WHEN v.st = 'retry' THEN v.nxt END,
			sent_at = CASE WHEN v.st = 'sent' THEN $2 ELSE p.sent_at END,
			lease_owner = '',
			lease_until = CASE WHEN v.st = 'retry' AND v.unc THEN p.lease_until END,
			attempts = CASE WHEN v.una THEN GREATEST(p.attempts - 1, 0) ELSE p.attempts END,
			updated_at = $2
			FROM unnest($3::bigint[], $4::text[], $5::text[], $6::int[], $7::timestamptz[], $8::bool[], $9::bool[]) AS v(id, st, msg, code, nxt, unc, una)
			WHERE p.id = v.id AND p.status = 'sending' AND p.lease_owner = $1`,
			owner, db(now), ids, sts, msgs, codes, next, uncertain, unattempted)
		b.Queue(`COMMIT`)
		return s.pool.SendBatch(ctx, b).Close()
	})
}

// Passback implements Store.
func (s *Postgres) Passback(ctx context.Context, id int64) (*Passback, error) {
	p, err := scanPGPassback(s.pool.QueryRow(ctx, `SELECT `+pgPassbackCols+` FROM passbacks WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return p, s.wrap(err)
}

// ListPassbacks implements Store.
func (s *Postgres) ListPassbacks(ctx context.Context, f PassbackFilter) ([]Passback, error) {
	q := `SELECT ` + pgPassbackCols + ` FROM passbacks`
	var where []string
	var args []any
	if len(f.Statuses) > 0 {
		args = append(args, f.Statuses)
		where = append(where, fmt.Sprintf("status = ANY($%d)", len(args)))
	}
	if f.Username != "" {
		args = append(args, f.Username)
		where = append(where, fmt.Sprintf("username = $%d", len(args)))
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := collectPassbacks(rows)
	return out, s.wrap(err)
}
