package passback

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/owner"
	"github.com/ltigrade/ltigrade/internal/store"
)

// countingStore counts claim and completion transactions; with crash set,
// Complete records nothing and fails, as if the process died before its
// group commit.
type countingStore struct {
	store.Store
	claims, completes atomic.Int64
	handedBack        atomic.Int64 // rows completed as Unattempted
	crash             bool
}

var errCrash = errors.New("process died before recording outcomes")

func (c *countingStore) ClaimIDs(ctx context.Context, cl store.Claim, ids []int64) ([]store.Passback, error) {
	c.claims.Add(1)
	return c.Store.ClaimIDs(ctx, cl, ids)
}

func (c *countingStore) Complete(ctx context.Context, o string, now time.Time, rs map[int64]store.Result) error {
	c.completes.Add(1)
	for _, r := range rs {
		if r.Unattempted {
			c.handedBack.Add(1)
		}
	}
	if c.crash {
		return errCrash
	}
	return c.Store.Complete(ctx, o, now, rs)
}

func batchRows(t *testing.T, s store.Store, n int, score string) []*store.Passback {
	t.Helper()
	var ps []*store.Passback
	for i := range n {
		sess := session(t, s, fmt.Sprintf("g%04d", i))
		ps = append(ps, &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username,
			Score: score, Protocol: "lti11", TargetURL: "http://lms.example/outcomes", SourcedID: sess.SourcedID})
	}
	if err := s.Enqueue(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

// A large batch is claimed and recorded in groups, not a transaction per
// row or per free worker, and still sends every row exactly once.
func TestSendBatchClaimsAndCompletesInGroups(t *testing.T) {
	base := openStore(t, filepath.Join(t.TempDir(), "db"))
	ps := batchRows(t, base, 2000, "0.5")
	cs := &countingStore{Store: base}
	var mu sync.Mutex
	sends := map[int64]int{}
	e := &Engine{Store: cs, Concurrency: 8, Timeout: 20 * time.Second, Sender: SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
		mu.Lock()
		defer mu.Unlock()
		sends[p.ID]++
		return Outcome{Status: store.StatusSent}
	})}
	reported := map[int64]string{}
	if err := e.SendBatch(context.Background(), ps, time.Second, func(p *store.Passback, o Outcome) {
		reported[p.ID] = o.Status
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		got, err := base.Passback(context.Background(), p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sends[p.ID] != 1 || reported[p.ID] != store.StatusSent || got.Status != store.StatusSent {
			t.Fatalf("row %d: %d sends, reported %q, stored %q", p.ID, sends[p.ID], reported[p.ID], got.Status)
		}
	}
	// One claim per free worker would be at least 2000/8 = 250 claims and
	// as many completions; groups make it a small fraction of that.
	if n := cs.claims.Load(); n > 125 {
		t.Errorf("%d claim transactions for 2000 rows", n)
	}
	if n := cs.completes.Load(); n > 125 {
		t.Errorf("%d completion transactions for 2000 rows", n)
	}
}

// A batch whose process dies after sending but before its group commit
// recorded the outcomes leaves its rows leased by a dead owner. The next
// sync sends them again at once (a harmless duplicate), newer scores
// journaled meanwhile win, and the LMS ends with the newest score of
// every student.
func TestSendBatchCrashBeforeFlushResends(t *testing.T) {
	base := openStore(t, filepath.Join(t.TempDir(), "db"))
	ps := batchRows(t, base, 200, "0.1")
	lms := &fakeLMS{}
	send := SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
		lms.set(p)
		return Outcome{Status: store.StatusSent}
	})
	// An owner with this process's pid and another start time: a sender
	// that is gone, as a killed `score --batch` is to the next sync.
	dead := fmt.Sprintf("%s:%d:1:0badf00d", owner.Scope(), os.Getpid())
	cs := &countingStore{Store: base, crash: true}
	crashed := &Engine{Store: cs, Owner: dead, Concurrency: 4, Timeout: 100 * time.Millisecond, Sender: send}
	reported := 0
	err := crashed.SendBatch(context.Background(), ps, 0, func(p *store.Passback, o Outcome) {
		if o.Status != store.StatusPending {
			reported++
		}
	})
	if !errors.Is(err, errCrash) {
		t.Fatalf("SendBatch: %v, want the crash", err)
	}
	if lms.sends == 0 || reported != 0 {
		t.Fatalf("%d sends before the crash, %d reported as finished: want sends, none reported", lms.sends, reported)
	}
	lost := 0
	for _, p := range ps {
		got, _ := base.Passback(context.Background(), p.ID)
		if got.Status == store.StatusSending {
			lost++
		}
	}
	if lost == 0 {
		t.Fatal("no row left leased by the crashed batch")
	}
	// Newer scores for every other student, journaled after the crash.
	newest := map[string]string{}
	for i, p := range ps {
		newest[p.SourcedID] = "0.1"
		if i%2 == 0 {
			sess, err := base.Session(context.Background(), p.SessionID)
			if err != nil {
				t.Fatal(err)
			}
			journal(t, base, sess, "0.9")
			newest[p.SourcedID] = "0.9"
		}
	}
	// sync until nothing is queued; newer rows of sessions the dead sender
	// had on the wire wait for its lease window to end.
	before := lms.sends
	sync := &Engine{Store: base, Concurrency: 4, Timeout: 100 * time.Millisecond, Sender: send}
	for range 100 {
		if _, err := sync.Drain(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		left, err := base.ListPassbacks(context.Background(), store.PassbackFilter{Statuses: []string{store.StatusPending, store.StatusRetry, store.StatusSending}})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lms.sends-before < len(ps) {
		t.Errorf("sync sent %d rows, want at least one per student (%d)", lms.sends-before, len(ps))
	}
	for sid, want := range newest {
		if got := lms.grades[sid]; got != want {
			t.Errorf("%s: the LMS holds %q, want the newest %q", sid, got, want)
		}
	}
	all, err := base.ListPassbacks(context.Background(), store.PassbackFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		if p.Status != store.StatusSent && p.Status != store.StatusSuperseded {
			t.Errorf("row %d ends %s", p.ID, p.Status)
		}
	}
}

// Rows claimed ahead of the workers are sent only while their lease still
// holds a whole 2 × Timeout from the send's start (the window in which
// the LMS is expected to act on a request); rows that waited longer
// behind sends that turned slow are handed back and claimed again, never
// sent on a short lease, and every row is still sent exactly once.
func TestSendBatchSendsClaimedAheadOnlyWithinTheirLease(t *testing.T) {
	base := openStore(t, filepath.Join(t.TempDir(), "db"))
	ps := batchRows(t, base, 300, "0.5")
	cs := &countingStore{Store: base}
	const timeout = 200 * time.Millisecond
	var mu sync.Mutex
	sends := map[int64]int{}
	short := 0
	e := &Engine{Store: cs, Concurrency: 4, Timeout: timeout, Sender: SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
		mu.Lock()
		sends[p.ID]++
		n := len(sends)
		// The engine decides before the goroutine runs; timeout/8 of slack
		// keeps a late-scheduled goroutine on a busy machine from failing
		// this, while a row sent after waiting on slow sends misses by far.
		if p.LeaseUntil == nil || time.Now().Add(2*timeout-timeout/8).After(*p.LeaseUntil) {
			short++
		}
		mu.Unlock()
		// Fast at first (the engine then claims far ahead), then slow.
		if n > 100 {
			time.Sleep(20 * time.Millisecond)
		}
		return Outcome{Status: store.StatusSent}
	})}
	reported := map[int64]string{}
	if err := e.SendBatch(context.Background(), ps, 10*time.Second, func(p *store.Passback, o Outcome) {
		reported[p.ID] = o.Status
	}); err != nil {
		t.Fatal(err)
	}
	if short > 0 {
		t.Errorf("%d sends started with less than 2 × timeout of lease left", short)
	}
	for _, p := range ps {
		if sends[p.ID] != 1 || reported[p.ID] != store.StatusSent {
			t.Errorf("row %d: %d sends, reported %q", p.ID, sends[p.ID], reported[p.ID])
		}
		// A hand-back is not an attempt: Attempts counts requests.
		if got, err := base.Passback(context.Background(), p.ID); err != nil || got.Attempts != sends[p.ID] {
			t.Errorf("row %d: %d attempts stored for %d sends (%v)", p.ID, got.Attempts, sends[p.ID], err)
		}
	}
	if cs.handedBack.Load() == 0 {
		t.Error("no row was handed back: the slow phase did not happen, so this test showed nothing")
	}
}
