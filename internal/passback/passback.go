// Package passback delivers journaled scores to the LMS: it claims rows from
// the store's outbox under a lease, sends them through a Sender, and records
// each outcome (sent, rejected, retry later with backoff).
//
// Ordering is the store's job (it only hands out the newest unsent score of a
// session, and never two of one session at once); this package decides when
// and how often to try.
package passback

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ltigrade/ltigrade/internal/owner"
	"github.com/ltigrade/ltigrade/internal/store"
)

// Outcome is what one delivery attempt ended with, as a Sender reports it.
type Outcome struct {
	Status     string // store.StatusSent, store.StatusRejected or store.StatusRetry
	Message    string
	HTTPStatus int
	RetryAfter time.Duration // the LMS's Retry-After, if any
	// Uncertain says the request may have reached the LMS without an
	// answer (timeout, dropped connection): it may still act on it.
	Uncertain bool
	// Local says the attempt failed on this host before anything was sent
	// (the consumer secret or platform key could not be loaded): only a
	// local fix helps, so there is no quick second try, and the row is due
	// again at once rather than backing off from an LMS never asked.
	Local bool
}

// Sender sends one score to the LMS. It must not retry by itself: the engine
// owns retries so every attempt is journaled.
type Sender interface {
	Send(ctx context.Context, p *store.Passback) Outcome
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, p *store.Passback) Outcome

// Send implements Sender.
func (f SenderFunc) Send(ctx context.Context, p *store.Passback) Outcome { return f(ctx, p) }

// Engine sends passbacks from a store.
type Engine struct {
	Store       store.Store
	Sender      Sender
	Owner       string // lease owner; default OwnerID()
	Now         func() time.Time
	Timeout     time.Duration // budget of one attempt (passback.timeout)
	Concurrency int           // parallel sends (passback.concurrency)
	// Backoff gives the wait before attempt n+1 after n failed attempts;
	// default exponential from 30 s, capped at 1 h, with jitter.
	Backoff func(attempts int) time.Duration
	// Observe, if set, is told the outcome of every attempt this engine
	// makes (the service's metrics count them); it must be quick and safe
	// for concurrent use.
	Observe func(p *store.Passback, o Outcome)
}

// OwnerID names this process as a lease owner; see package owner.
func OwnerID() string { return owner.ID() }

// OwnerAlive reports whether the process named by an OwnerID may still run;
// see package owner.
func OwnerAlive(o string) bool { return owner.Alive(o) }

func (e *Engine) init() {
	if e.Owner == "" {
		e.Owner = OwnerID()
	}
	owner.Register(e.Owner)
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Timeout <= 0 {
		e.Timeout = 20 * time.Second
	}
	if e.Concurrency <= 0 {
		e.Concurrency = 8
	}
	if e.Backoff == nil {
		e.Backoff = DefaultBackoff
	}
}

// DefaultBackoff doubles from 30 s to at most 1 h, and picks a point in the
// upper half of that at random so that a class's worth of failed scores do
// not all come back at the same second.
func DefaultBackoff(attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	d := 30 * time.Second
	for i := 1; i < attempts && d < time.Hour; i++ {
		d *= 2
	}
	if d > time.Hour {
		d = time.Hour
	}
	return d/2 + rand.N(d/2+1)
}

// leaseFor is how long a claim lasts: the attempt budget (a live sender's
// request deadline) plus as much again, the window in which ltigrade
// expects an LMS to have finished or dropped a request its sender gave up
// on. After an attempt with an unknown outcome, newer scores of the
// session wait for the end of this window.
func (e *Engine) leaseFor() time.Duration { return 2 * e.Timeout }

func (e *Engine) claim(now time.Time, ignoreBackoff bool, limit int) store.Claim {
	return store.Claim{Owner: e.Owner, Now: now, LeaseUntil: now.Add(e.leaseFor()),
		IgnoreBackoff: ignoreBackoff, Limit: limit, OwnerAlive: OwnerAlive}
}

func (e *Engine) result(p *store.Passback, o Outcome, now time.Time) store.Result {
	r := store.Result{Status: o.Status, Message: o.Message, HTTPStatus: o.HTTPStatus,
		Uncertain: o.Status == store.StatusRetry && o.Uncertain}
	if o.Status == store.StatusRetry {
		wait := e.Backoff(p.Attempts)
		switch {
		case o.Local:
			// Nothing to back off from: the next sync after the fix sends it.
			wait = 0
		case o.RetryAfter > 0:
			// The LMS said when; a little jitter on top keeps a burst of
			// rate-limited rows from returning as one burst.
			wait = o.RetryAfter + rand.N(o.RetryAfter/10+1)
		}
		r.NextTry = now.Add(wait)
	}
	return r
}

// send runs one attempt within the engine's timeout. A sender that panics
// or returns an unknown status counts as a transient failure: the row stays
// in the outbox.
func (e *Engine) send(ctx context.Context, p *store.Passback) (o Outcome) {
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			o = Outcome{Status: store.StatusRetry, Message: fmt.Sprintf("internal error while sending: %v", r), Uncertain: true}
		}
	}()
	o = e.Sender.Send(ctx, p)
	switch o.Status {
	case store.StatusSent, store.StatusRejected, store.StatusRetry, store.StatusSuperseded:
	default:
		o = Outcome{Status: store.StatusRetry, Message: "sender returned no outcome", Uncertain: true}
	}
	if e.Observe != nil {
		e.Observe(p, o)
	}
	return o
}

// SendNow tries to deliver the given (just journaled) rows within one
// budget of e.Timeout, waiting at most wait for rows of the same session
// that are on the wire elsewhere. A row that fails transiently gets one
// more try a second later when the LMS did not ask for a longer pause and
// the budget allows; after that it stays queued for `ltigrade sync`. It
// returns the rows as stored afterwards.
func (e *Engine) SendNow(ctx context.Context, ids []int64, wait time.Duration) ([]store.Passback, error) {
	e.init()
	start := e.Now()
	ctx, cancel := context.WithDeadline(ctx, start.Add(e.Timeout))
	defer cancel()
	waitUntil := start.Add(wait)
	tries := map[int64]int{}
	todo := append([]int64(nil), ids...)
	for len(todo) > 0 && ctx.Err() == nil {
		got, err := e.Store.ClaimIDs(ctx, e.claim(e.Now(), true, 0), todo)
		if err != nil && ctx.Err() != nil {
			// The budget ended during the claim (a database server a round
			// trip away makes that likely): nothing was leased, the rows
			// stay queued.
			break
		}
		if err != nil {
			return nil, err
		}
		outcomes, err := e.sendAll(ctx, got)
		if err != nil {
			return nil, err
		}
		var rest []int64
		for _, id := range todo {
			if o, ok := outcomes[id]; ok {
				tries[id]++
				if o.Status == store.StatusRetry && !o.Local && tries[id] < 2 && o.RetryAfter <= time.Second &&
					e.Now().Sub(start) < e.Timeout/3 {
					rest = append(rest, id)
				}
				continue
			}
			p, err := e.Store.Passback(ctx, id)
			if err != nil {
				return nil, err
			}
			// Not claimed: behind another row of its session. Wait.
			if p.Status == store.StatusPending || p.Status == store.StatusRetry {
				rest = append(rest, id)
			}
		}
		todo = rest
		if len(todo) == 0 || !e.Now().Before(waitUntil) {
			break
		}
		pause := 100 * time.Millisecond
		if len(outcomes) > 0 {
			pause = time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
	out := make([]store.Passback, 0, len(ids))
	for _, id := range ids {
		p, err := e.Store.Passback(context.WithoutCancel(ctx), id)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, nil
}

// Stats counts what Drain did.
type Stats struct {
	Sent     int `json:"sent"`
	Rejected int `json:"rejected"`
	Retry    int `json:"retry"`
	// Superseded: the LMS refused them because it holds a newer score.
	Superseded int `json:"superseded"`
}

type done struct {
	id int64
	o  Outcome
	r  store.Result
}

// Drain sends every due passback (all queued ones when ignoreBackoff) until
// none is due or ctx ends. Rows are claimed only when a worker is free to
// send them at once, so every lease covers a single send; outcomes are
// written in small groups as they arrive.
func (e *Engine) Drain(ctx context.Context, ignoreBackoff bool) (Stats, error) {
	e.init()
	var st Stats
	runStart := e.Now()
	free := e.Concurrency
	inflight := 0
	results := make(chan done, e.Concurrency)
	var pending []done
	seen := map[int64]bool{}

	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		res := make(map[int64]store.Result, len(pending))
		for _, d := range pending {
			res[d.id] = d.r
			switch d.r.Status {
			case store.StatusSent:
				st.Sent++
			case store.StatusRejected:
				st.Rejected++
			case store.StatusSuperseded:
				st.Superseded++
			default:
				st.Retry++
			}
		}
		pending = pending[:0]
		// Outcomes are recorded even if ctx was cancelled: what the LMS
		// answered must not be forgotten.
		return e.Store.Complete(context.WithoutCancel(ctx), e.Owner, e.Now(), res)
	}
	// collect takes finished sends; with block it waits for at least one.
	collect := func(block bool) {
		if block && inflight > 0 {
			d := <-results
			pending = append(pending, d)
			inflight--
			free++
		}
		for {
			select {
			case d := <-results:
				pending = append(pending, d)
				inflight--
				free++
			default:
				return
			}
		}
	}
	var err error
	for {
		if ctx.Err() == nil && free > 0 {
			c := e.claim(e.Now(), ignoreBackoff, free)
			// A row that failed in this run is not tried again in the same
			// run, even when ignoring backoff: sync must come to an end.
			c.SkipFailedSince = runStart
			var got []store.Passback
			got, err = e.Store.ClaimDue(ctx, c)
			if err != nil {
				break
			}
			for i := range got {
				p := got[i]
				if seen[p.ID] {
					err = fmt.Errorf("passback: row %d claimed twice in one run", p.ID)
					break
				}
				seen[p.ID] = true
				free--
				inflight++
				go func() {
					o := e.send(ctx, &p)
					results <- done{id: p.ID, o: o, r: e.result(&p, o, e.Now())}
				}()
			}
			if err != nil {
				break
			}
			if len(got) > 0 {
				collect(false)
				if len(pending) >= e.Concurrency {
					if err = flush(); err != nil {
						break
					}
				}
				continue
			}
		}
		if inflight == 0 {
			break
		}
		// Nothing more to claim now: wait for a send to finish, record it
		// (it may unblock a newer row of its session), then look again.
		collect(true)
		if err = flush(); err != nil {
			break
		}
	}
	for inflight > 0 {
		collect(true)
	}
	if ferr := flush(); err == nil {
		err = ferr
	}
	if err == nil {
		err = ctx.Err()
	}
	return st, err
}

// sendAll sends ps with up to Concurrency workers and records every
// outcome in one store transaction.
func (e *Engine) sendAll(ctx context.Context, ps []store.Passback) (map[int64]Outcome, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	results := make(map[int64]store.Result, len(ps))
	outcomes := make(map[int64]Outcome, len(ps))
	var mu sync.Mutex
	sem := make(chan struct{}, e.Concurrency)
	var wg sync.WaitGroup
	for i := range ps {
		p := &ps[i]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o := e.send(ctx, p)
			r := e.result(p, o, e.Now())
			mu.Lock()
			results[p.ID] = r
			outcomes[p.ID] = o
			mu.Unlock()
		}()
	}
	wg.Wait()
	return outcomes, e.Store.Complete(context.WithoutCancel(ctx), e.Owner, e.Now(), results)
}
