package passback

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/owner"
	"github.com/ltigrade/ltigrade/internal/store"
)

// A lease whose owner's pid now belongs to another process (the start time
// differs) is the lease of a dead sender: the next drain re-sends at once
// instead of waiting for the lease to expire.
func TestReusedPidOwnerRowsAreResent(t *testing.T) {
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := openStore(t, filepath.Join(t.TempDir(), "db"))
	sess := session(t, s, "alice")
	id := journal(t, s, sess, "0.7")
	now := time.Now()
	// The live child's pid, with a start time it cannot have (one clock
	// tick after boot): a sender that had this pid before.
	reused := fmt.Sprintf("%s:%d:1:0badf00d", owner.Scope(), cmd.Process.Pid)
	if got, err := s.ClaimIDs(context.Background(), store.Claim{Owner: reused, Now: now, LeaseUntil: now.Add(time.Hour)}, []int64{id}); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	sent := 0
	e := &Engine{Store: s, Sender: SenderFunc(func(ctx context.Context, p *store.Passback) Outcome {
		sent++
		return Outcome{Status: store.StatusSent}
	})}
	st, err := e.Drain(context.Background(), false)
	if err != nil || st.Sent != 1 || sent != 1 {
		t.Fatalf("stats %+v err %v: the row of the reused pid's owner was not re-sent", st, err)
	}
}
