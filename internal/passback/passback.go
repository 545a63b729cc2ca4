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
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ltigrade/ltigrade/internal/store"
)

// Outcome is what one delivery attempt ended with, as a Sender reports it.
type Outcome struct {
	Status     string // store.StatusSent, store.StatusRejected or store.StatusRetry
	Message    string
	HTTPStatus int
	RetryAfter time.Duration // the LMS's Retry-After, if any
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
}

// OwnerID names this process as a lease owner: host, pid and a random part
// (a recycled pid must not inherit a lease).
func OwnerID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d:%08x", host, os.Getpid(), rand.Uint32())
}

// OwnerAlive reports whether the process named by an OwnerID may still run.
// Only owners on this host can be checked; others are assumed alive and
// their leases expire by time.
func OwnerAlive(owner string) bool {
	parts := strings.Split(owner, ":")
	if len(parts) != 3 {
		return true
	}
	host, _ := os.Hostname()
	if parts[0] != host {
		return true
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return true
	}
	if pid == os.Getpid() {
		return ownerSelf.Has(owner)
	}
	err = syscall.Kill(pid, 0)
	return !errors.Is(err, syscall.ESRCH)
}

var ownerSelf ownerRegistry

// ownerRegistry remembers this process's owner id, so OwnerAlive can tell a
// live owner in this very process from a dead one that had our pid.
type ownerRegistry struct {
	mu sync.Mutex
	v  map[string]bool
}

func (r *ownerRegistry) Store(o string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.v == nil {
		r.v = map[string]bool{}
	}
	r.v[o] = true
}

func (r *ownerRegistry) Has(o string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.v[o]
}

func (e *Engine) init() {
	if e.Owner == "" {
		e.Owner = OwnerID()
	}
	ownerSelf.Store(e.Owner)
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

// leaseFor is how long a claim lasts: the attempt budget plus a margin, so a
// live sender always finishes (its HTTP request deadline is the budget)
// before anybody else may take the row.
func (e *Engine) leaseFor() time.Duration { return e.Timeout + 30*time.Second }

func (e *Engine) claim(now time.Time, ignoreBackoff bool, limit int) store.Claim {
	return store.Claim{Owner: e.Owner, Now: now, LeaseUntil: now.Add(e.leaseFor()),
		IgnoreBackoff: ignoreBackoff, Limit: limit, OwnerAlive: OwnerAlive}
}

func (e *Engine) result(p *store.Passback, o Outcome, now time.Time) store.Result {
	r := store.Result{Status: o.Status, Message: o.Message, HTTPStatus: o.HTTPStatus}
	if o.Status == store.StatusRetry {
		wait := e.Backoff(p.Attempts)
		if o.RetryAfter > 0 {
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
			o = Outcome{Status: store.StatusRetry, Message: fmt.Sprintf("internal error while sending: %v", r)}
		}
	}()
	o = e.Sender.Send(ctx, p)
	switch o.Status {
	case store.StatusSent, store.StatusRejected, store.StatusRetry:
	default:
		o = Outcome{Status: store.StatusRetry, Message: "sender returned no outcome"}
	}
	return o
}

// SendNow tries to deliver the given (just journaled) rows, waiting at most
// wait for rows of the same session that another process has on the wire.
// A row that fails transiently gets one more try a second later when the
// LMS did not ask for a longer pause and the budget allows; after that it
// stays queued for `ltigrade sync`. It returns the rows as stored afterwards.
func (e *Engine) SendNow(ctx context.Context, ids []int64, wait time.Duration) ([]store.Passback, error) {
	e.init()
	start := e.Now()
	deadline := start.Add(wait)
	tries := map[int64]int{}
	todo := append([]int64(nil), ids...)
	for len(todo) > 0 {
		got, err := e.Store.ClaimIDs(ctx, e.claim(e.Now(), true, 0), todo)
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
				if o.Status == store.StatusRetry && tries[id] < 2 && o.RetryAfter <= time.Second &&
					e.Now().Sub(start) < e.Timeout/3 {
					rest = append(rest, id)
				}
				continue
			}
			p, err := e.Store.Passback(ctx, id)
			if err != nil {
				return nil, err
			}
			// Not claimed: behind an in-flight row of its session. Wait.
			if p.Status == store.StatusPending || p.Status == store.StatusRetry {
				rest = append(rest, id)
			}
		}
		todo = rest
		if len(todo) == 0 || !e.Now().Before(deadline) {
			break
		}
		pause := 100 * time.Millisecond
		if len(outcomes) > 0 {
			pause = time.Second
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
	}
	out := make([]store.Passback, 0, len(ids))
	for _, id := range ids {
		p, err := e.Store.Passback(ctx, id)
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
}

// Drain sends every due passback (all queued ones when ignoreBackoff),
// batch by batch, until none is due or ctx ends.
func (e *Engine) Drain(ctx context.Context, ignoreBackoff bool) (Stats, error) {
	e.init()
	var st Stats
	seen := map[int64]bool{}
	runStart := e.Now()
	for ctx.Err() == nil {
		c := e.claim(e.Now(), ignoreBackoff, e.Concurrency*32)
		// A row that failed in this run is not tried again in the same
		// run, even when ignoring backoff: sync must come to an end.
		c.SkipFailedSince = runStart
		got, err := e.Store.ClaimDue(ctx, c)
		if err != nil {
			return st, err
		}
		var batch []store.Passback
		for _, p := range got {
			if seen[p.ID] {
				return st, fmt.Errorf("passback: row %d claimed twice in one run", p.ID)
			}
			seen[p.ID] = true
			batch = append(batch, p)
		}
		if len(batch) == 0 {
			break
		}
		outcomes, err := e.sendAll(ctx, batch)
		for _, r := range outcomes {
			switch r.Status {
			case store.StatusSent:
				st.Sent++
			case store.StatusRejected:
				st.Rejected++
			default:
				st.Retry++
			}
		}
		if err != nil {
			return st, err
		}
	}
	return st, ctx.Err()
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
	// The outcome is recorded even if ctx was cancelled meanwhile: what
	// the LMS answered must not be forgotten.
	return outcomes, e.Store.Complete(context.WithoutCancel(ctx), e.Owner, e.Now(), results)
}
