package passback

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/store"
)

// Host is the LMS host a passback goes to (host and port, lower case, no
// path or query), for per-host politeness and the service's metrics; ""
// when its target is not a URL.
func Host(p *store.Passback) string { return host(p) }

// host is the LMS host a passback goes to, for per-host politeness.
func host(p *store.Passback) string {
	target := p.TargetURL
	if target == "" {
		target = p.LineItems
	}
	u, err := url.Parse(target)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// rateLimited says the LMS asked us to slow down.
func rateLimited(o Outcome) bool {
	return o.HTTPStatus == 429 || o.RetryAfter > 0 ||
		(o.HTTPStatus == 403 && strings.Contains(strings.ToLower(o.Message), "rate limit"))
}

// Group sizes of SendBatch. Claims and outcomes of a large batch go to the
// store in groups, so that a 20,000-row batch costs a few hundred
// transactions instead of two per row (issue 11).
const (
	maxClaimGroup = 256                   // rows leased in one claim transaction
	flushRows     = 256                   // outcomes written in one transaction
	flushEvery    = 50 * time.Millisecond // at most this long in memory
)

// aheadBudget is how long a row claimed ahead may wait for a worker: its
// lease is longer by this much, so that the send still has a full
// 2 × Timeout of lease from when it starts (the window in which ltigrade
// expects the LMS to have acted on a request). A row that waited longer is
// handed back unsent.
func (e *Engine) aheadBudget() time.Duration { return e.Timeout / 4 }

// claimed is a row leased by SendBatch and not yet given to a worker.
type claimed struct {
	p     *store.Passback // the caller's row
	g     store.Passback  // as claimed
	until time.Time       // start its send before this, or hand it back
}

// SendBatch sends just-journaled rows with up to Concurrency in flight.
// Rows are claimed in groups a little ahead of the workers (as many as
// the workers send in about half of aheadBudget at the rate seen so far,
// at least one per free worker), and outcomes are recorded in group
// commits of up to flushRows rows or flushEvery, and at the end. A crash
// before a flush loses only the record of some sends: the rows stay leased
// by a dead process, and the next sync sends them again (the same score
// twice is harmless; newer scores of a session still wait for the lease).
// Once a host answers with a rate limit, no more rows go to it in this
// run: they stay queued for `ltigrade sync` instead of hammering it. done
// is called for every row once its outcome for this run is known and
// recorded (Status "pending" for rows left queued without an attempt).
// Rows of sessions that another process has on the wire are retried for
// at most wait.
func (e *Engine) SendBatch(ctx context.Context, ps []*store.Passback, wait time.Duration, done func(p *store.Passback, o Outcome)) error {
	e.init()
	start := e.Now()
	deadline := start.Add(wait)
	queue := append([]*store.Passback(nil), ps...)
	var ready []claimed // claimed, waiting for a worker
	var later []*store.Passback
	blocked := map[string]bool{}
	free, inflight, finished := e.Concurrency, 0, 0
	type fin struct {
		p     *store.Passback
		o     Outcome
		r     store.Result
		again bool // a quick second try follows; not reported yet
	}
	tries := map[int64]int{}
	var retryAt time.Time
	var retrySoon []*store.Passback
	results := make(chan fin, e.Concurrency)
	var pending []fin
	var pendingSince time.Time

	// Group claims and group commits run beside the sends, one store call
	// at a time: while the main loop waited for a claim or a commit of a
	// few hundred rows (milliseconds on SQLite), no send could start and
	// the LMS sat idle. A call's results are applied here, in the loop, so
	// done and the bookkeeping stay on one goroutine.
	dbDone := make(chan func() error, 1)
	dbBusy := false
	startDB := func(call func() func() error) {
		dbBusy = true
		go func() { dbDone <- call() }()
	}
	waitDB := func() error {
		if !dbBusy {
			return nil
		}
		apply := <-dbDone
		dbBusy = false
		return apply()
	}
	// Outcomes are recorded even if ctx was cancelled: what the LMS
	// answered must not be forgotten.
	complete := func(batch []fin, now time.Time) func() error {
		res := make(map[int64]store.Result, len(batch))
		for _, f := range batch {
			res[f.p.ID] = f.r
		}
		err := e.Store.Complete(context.WithoutCancel(ctx), e.Owner, now, res)
		return func() error {
			if err == nil {
				for _, f := range batch {
					if !f.again {
						done(f.p, f.o)
					}
				}
			}
			return err
		}
	}
	flushAsync := func() {
		batch, now := pending, e.Now()
		pending = nil
		startDB(func() func() error { return complete(batch, now) })
	}
	flush := func() error {
		if err := waitDB(); err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		batch := pending
		pending = nil
		return complete(batch, e.Now())()
	}
	// handBack releases claimed rows that will not be sent now (the run
	// ends, their host asked to slow down, or they waited past their
	// budget): due again at once, for this run or a sync.
	handBack := func(cs []claimed, why string) error {
		if len(cs) == 0 {
			return nil
		}
		if err := waitDB(); err != nil {
			return err
		}
		res := make(map[int64]store.Result, len(cs))
		for _, c := range cs {
			res[c.p.ID] = store.Result{Status: store.StatusRetry, Message: why, NextTry: e.Now(), Unattempted: true}
		}
		return e.Store.Complete(context.WithoutCancel(ctx), e.Owner, e.Now(), res)
	}
	take := func(f fin) {
		inflight--
		free++
		finished++
		if rateLimited(f.o) {
			blocked[host(f.p)] = true
		}
		// Like a single score: one quick second try of a transient
		// failure (a 5xx, or a 401 after which a new token was fetched),
		// unless the LMS asked to slow down or the failure is local.
		tries[f.p.ID]++
		if f.o.Status == store.StatusRetry && !f.o.Local && tries[f.p.ID] < 2 && !blocked[host(f.p)] && e.Now().Before(deadline) {
			f.again = true
			retrySoon = append(retrySoon, f.p)
			retryAt = e.Now().Add(time.Second)
		}
		if len(pending) == 0 {
			pendingSince = e.Now()
		}
		pending = append(pending, f)
	}
	// ahead is how many rows to keep claimed: enough for the free workers,
	// and as many as finish in half the budget at this run's rate.
	ahead := func() int {
		n := e.Concurrency
		if el := e.Now().Sub(start); finished > 0 && el > 0 {
			n = max(n, int(float64(finished)/el.Seconds()*e.aheadBudget().Seconds()/2))
		}
		return min(n, maxClaimGroup)
	}
	for {
		// Claim the next group while the claimed rows still keep the
		// workers busy for a while (reserve), so the claim overlaps sends.
		reserve := max(free, ahead()/4)
		if !dbBusy && ctx.Err() == nil && len(ready) < free+reserve && len(queue) > 0 {
			want := min(max(ahead(), free)+reserve-len(ready), maxClaimGroup)
			var pick []*store.Passback
			for len(queue) > 0 && len(pick) < want {
				p := queue[0]
				queue = queue[1:]
				if blocked[host(p)] {
					done(p, Outcome{Status: store.StatusPending, Message: "not tried: the LMS asked to slow down; queued for ltigrade sync"})
					continue
				}
				pick = append(pick, p)
			}
			if len(pick) > 0 {
				ids := make([]int64, len(pick))
				for i, p := range pick {
					ids[i] = p.ID
				}
				now := e.Now()
				c := e.claim(now, true, 0)
				c.LeaseUntil = c.LeaseUntil.Add(e.aheadBudget())
				until := now.Add(e.aheadBudget())
				startDB(func() func() error {
					got, err := e.Store.ClaimIDs(ctx, c, ids)
					return func() error {
						if err != nil {
							if ctx.Err() != nil {
								// Interrupted during the claim: nothing was leased.
								queue = append(pick, queue...)
								return nil
							}
							return err
						}
						byID := make(map[int64]store.Passback, len(got))
						for _, g := range got {
							byID[g.ID] = g
						}
						var missing []int64
						for _, p := range pick {
							if g, ok := byID[p.ID]; ok {
								ready = append(ready, claimed{p: p, g: g, until: until})
							} else {
								missing = append(missing, p.ID)
							}
						}
						return e.notClaimed(ctx, pick, missing, &later, done)
					}
				})
			}
		}
		// Hand claimed rows to free workers.
		var stale []claimed
		for ctx.Err() == nil && free > 0 && len(ready) > 0 {
			c := ready[0]
			ready = ready[1:]
			if blocked[host(c.p)] || !e.Now().Before(c.until) {
				stale = append(stale, c)
				continue
			}
			free--
			inflight++
			go func(c claimed) {
				o := e.send(ctx, &c.g)
				results <- fin{p: c.p, o: o, r: e.result(&c.g, o, e.Now())}
			}(c)
		}
		if ctx.Err() != nil && len(ready) > 0 {
			stale, ready = append(stale, ready...), nil
		}
		if len(stale) > 0 {
			if err := handBack(stale, "claimed but not sent in this run; due again"); err != nil {
				return err
			}
			for _, c := range stale {
				switch {
				case blocked[host(c.p)]:
					done(c.p, Outcome{Status: store.StatusPending, Message: "not tried: the LMS asked to slow down; queued for ltigrade sync"})
				case ctx.Err() != nil:
					// Reported as not sent by the caller.
				default:
					// Waited too long behind slow sends: claim it again.
					queue = append(queue, c.p)
				}
			}
			continue
		}
		if !dbBusy && (len(pending) >= flushRows || (len(pending) > 0 && e.Now().Sub(pendingSince) >= flushEvery)) {
			flushAsync()
		}
		if inflight > 0 || dbBusy {
			// Wait for a send or the store, or until the oldest unrecorded
			// outcome is due to be written.
			var tick <-chan time.Time
			var t *time.Timer
			if len(pending) > 0 && !dbBusy {
				t = time.NewTimer(max(flushEvery-e.Now().Sub(pendingSince), 0))
				tick = t.C
			}
			select {
			case f := <-results:
				take(f)
			case apply := <-dbDone:
				dbBusy = false
				if err := apply(); err != nil {
					return err
				}
			case <-tick:
			}
			if t != nil {
				t.Stop()
			}
			for more := true; more; {
				select {
				case f := <-results:
					take(f)
				default:
					more = false
				}
			}
			continue
		}
		if len(ready) > 0 || (ctx.Err() == nil && len(queue) > 0) {
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if len(retrySoon) > 0 && ctx.Err() == nil {
			if d := retryAt.Sub(e.Now()); d > 0 {
				time.Sleep(d)
			}
			queue, retrySoon = retrySoon, nil
			continue
		}
		// Rows behind another process's in-flight row: try again a little
		// later, within wait.
		if len(later) > 0 && ctx.Err() == nil && e.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			queue, later = later, nil
			continue
		}
		for _, p := range later {
			done(p, Outcome{Status: store.StatusPending, Message: "waiting behind an earlier attempt of this session; queued for ltigrade sync"})
		}
		return ctx.Err()
	}
}

// notClaimed sorts the rows of a claim that were not leased: superseded,
// finished by another process meanwhile, or behind another process's
// in-flight row of their session (later).
func (e *Engine) notClaimed(ctx context.Context, pick []*store.Passback, missing []int64, later *[]*store.Passback, done func(p *store.Passback, o Outcome)) error {
	if len(missing) == 0 {
		return nil
	}
	byID := make(map[int64]*store.Passback, len(pick))
	for _, p := range pick {
		byID[p.ID] = p
	}
	for _, id := range missing {
		p := byID[id]
		cur, err := e.Store.Passback(ctx, id)
		if err != nil {
			return err
		}
		switch cur.Status {
		case store.StatusSuperseded:
			done(p, Outcome{Status: store.StatusSuperseded, Message: "a newer score for the same session was journaled"})
		case store.StatusSent, store.StatusRejected:
			// Another process (a sync) finished it meanwhile.
			done(p, Outcome{Status: cur.Status, Message: cur.LastError, HTTPStatus: cur.HTTPStatus})
		default:
			*later = append(*later, p)
		}
	}
	return nil
}
