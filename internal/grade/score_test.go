package grade

import (
	"context"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/store"
)

// slowStore is a store that other hosts keep busy: its claims by id, or
// its reads of one row under a deadline, last until the caller's context
// ends.
type slowStore struct {
	store.Store
	claims, reads bool
}

func (s slowStore) ClaimIDs(ctx context.Context, c store.Claim, ids []int64) ([]store.Passback, error) {
	if s.claims {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.ClaimIDs(ctx, c, ids)
}

func (s slowStore) Passback(ctx context.Context, id int64) (*store.Passback, error) {
	if _, ok := ctx.Deadline(); ok && s.reads {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.Passback(ctx, id)
}

// A score whose time budget ends before its row can be claimed is
// journaled and queued: exit 5 with the sync hint, not an unexpected error
// (the multi-host test met this on a loaded machine).
func TestScoreQueuedWhenTheStoreOutlastsTheBudget(t *testing.T) {
	for _, c := range []struct {
		name string
		slow slowStore
	}{{"claim", slowStore{claims: true}}, {"read while waiting", slowStore{reads: true}}} {
		t.Run(c.name, func(t *testing.T) {
			p := newFakePlatform(t)
			g := rosterWorld(t, p, "email")
			launch13(t, g, p, "alice@x.edu", "sub-a", "hw1")
			g.Config.Passback.Timeout = 300 * time.Millisecond
			if c.slow.reads {
				// A row of the session on the wire at another host makes
				// the score wait, reading its own row until the budget ends.
				ctx := context.Background()
				if _, err := g.Score(ctx, ScoreRequest{Notebook: "/home/jupyter-alice@x.edu/course/hw1/hw1.ipynb", Score: "0.1"}); err != nil {
					t.Fatal(err)
				}
				ps, _ := g.Store.ListPassbacks(ctx, store.PassbackFilter{})
				other := ps[0]
				other.ID = 0
				if err := g.Store.Enqueue(ctx, []*store.Passback{&other}); err != nil {
					t.Fatal(err)
				}
				now := time.Now()
				held, err := g.Store.ClaimIDs(ctx, store.Claim{Owner: "other-host:1", Now: now, LeaseUntil: now.Add(time.Minute)}, []int64{other.ID})
				if err != nil || len(held) != 1 {
					t.Fatalf("lease at the other host: %v %v", held, err)
				}
			}
			c.slow.Store = g.Store
			g.Store = c.slow
			res, err := g.Score(context.Background(), ScoreRequest{Notebook: "/home/jupyter-alice@x.edu/course/hw1/hw1.ipynb", Score: "0.7"})
			code, _ := ExitCode(err)
			if err == nil {
				code = res.Code()
			}
			if code != ExitQueued {
				t.Fatalf("exit %d for %v; want %d (queued)", code, err, ExitQueued)
			}
			ps, err := c.slow.Store.ListPassbacks(context.Background(), store.PassbackFilter{})
			if err != nil {
				t.Fatal(err)
			}
			newest := ps[0]
			for _, p := range ps {
				if p.ID > newest.ID {
					newest = p
				}
			}
			if newest.Score != "0.7" || newest.Status == store.StatusSuperseded {
				t.Fatalf("the score is not journaled as the session's newest: %+v", ps)
			}
		})
	}
}
