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

// SendBatch sends just-journaled rows with up to Concurrency in flight,
// claiming rows only when a worker is free to send them. Once a host
// answers with a rate limit, no more rows go to it in this run: they stay
// queued for `ltigrade sync` instead of hammering it. done is called for
// every row once its outcome for this run is known (Status "pending" for
// rows left queued without an attempt). Rows of sessions that another
// process has on the wire are retried for at most wait.
func (e *Engine) SendBatch(ctx context.Context, ps []*store.Passback, wait time.Duration, done func(p *store.Passback, o Outcome)) error {
	e.init()
	deadline := e.Now().Add(wait)
	queue := append([]*store.Passback(nil), ps...)
	var later []*store.Passback
	blocked := map[string]bool{}
	free, inflight := e.Concurrency, 0
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
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		res := make(map[int64]store.Result, len(pending))
		for _, f := range pending {
			res[f.p.ID] = f.r
		}
		err := e.Store.Complete(context.WithoutCancel(ctx), e.Owner, e.Now(), res)
		for _, f := range pending {
			if !f.again {
				done(f.p, f.o)
			}
		}
		pending = pending[:0]
		return err
	}
	take := func(f fin) {
		inflight--
		free++
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
		pending = append(pending, f)
	}
	for {
		// Fill free workers from the queue.
		if ctx.Err() == nil && free > 0 && len(queue) > 0 {
			var pick []*store.Passback
			for len(queue) > 0 && len(pick) < free {
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
				got, err := e.Store.ClaimIDs(ctx, e.claim(e.Now(), true, 0), ids)
				if err != nil {
					return err
				}
				claimed := map[int64]store.Passback{}
				for _, g := range got {
					claimed[g.ID] = g
				}
				for _, p := range pick {
					g, ok := claimed[p.ID]
					if !ok {
						cur, err := e.Store.Passback(ctx, p.ID)
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
							later = append(later, p)
						}
						continue
					}
					free--
					inflight++
					go func(p *store.Passback, g store.Passback) {
						o := e.send(ctx, &g)
						results <- fin{p: p, o: o, r: e.result(&g, o, e.Now())}
					}(p, g)
				}
				continue
			}
		}
		if inflight > 0 {
			take(<-results)
			for more := true; more; {
				select {
				case f := <-results:
					take(f)
				default:
					more = false
				}
			}
			// Record at once: a finished row must not sit in memory while
			// its lease runs out.
			if err := flush(); err != nil {
				return err
			}
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
