package storetest

import (
	"maps"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/store"
)

// testOutboxStats: the counts by status, the oldest unsent score and the
// last sync follow from what was journaled, delivered and recorded, as
// another handle on the database (another process) reads them.
func testOutboxStats(t *testing.T, b Backend) {
	s, reopen := b.Open(t)
	st, err := s.OutboxStats(bg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, name := range store.Statuses {
		want[name] = 0
	}
	if !maps.Equal(st.Statuses, want) || !st.OldestUnsent.IsZero() || !st.LastSync.IsZero() {
		t.Fatalf("empty store: %+v", st)
	}
	t0 := now0()
	var rows []*store.Passback
	for i, user := range []string{"u0", "u1", "u2", "u3"} {
		at := t0.Add(time.Duration(i) * time.Minute)
		rows = append(rows, enqueue(t, s, record(t, s, MkLaunch(user, "hw1", at)), "0.5", at))
	}
	// u3 gets a newer score: its first one is superseded.
	enqueue(t, s, record(t, s, MkLaunch("u3", "hw1", t0.Add(4*time.Minute))), "0.6", t0.Add(4*time.Minute))
	got, err := s.ClaimIDs(bg, claim("w", t0.Add(5*time.Minute)), []int64{rows[0].ID, rows[1].ID, rows[2].ID})
	if err != nil || len(got) != 3 {
		t.Fatalf("claimed %d: %v", len(got), err)
	}
	if err := s.Complete(bg, "w", t0.Add(5*time.Minute), map[int64]store.Result{
		rows[0].ID: {Status: store.StatusSent},
		rows[1].ID: {Status: store.StatusRejected, Message: "bad sourcedid"},
	}); err != nil {
		t.Fatal(err)
	}
	// rows[2] stays sending (claimed, not completed).
	if err := s.SyncFinished(bg, t0.Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A host whose clock is behind does not move the last sync back.
	if err := s.SyncFinished(bg, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	other := reopen()
	st, err = other.OutboxStats(bg)
	if err != nil {
		t.Fatal(err)
	}
	want[store.StatusSent], want[store.StatusRejected], want[store.StatusSending] = 1, 1, 1
	want[store.StatusSuperseded], want[store.StatusPending] = 1, 1
	if !maps.Equal(st.Statuses, want) {
		t.Errorf("statuses %v, want %v", st.Statuses, want)
	}
	// Oldest owed: rows[2] (sending, journaled at t0+2m); the sent and the
	// rejected ones are older but owed nothing.
	if !st.OldestUnsent.Equal(rows[2].CreatedAt) {
		t.Errorf("oldest unsent %v, want %v", st.OldestUnsent, rows[2].CreatedAt)
	}
	if !st.LastSync.Equal(t0.Add(6 * time.Minute)) {
		t.Errorf("last sync %v, want %v", st.LastSync, t0.Add(6*time.Minute))
	}
}
