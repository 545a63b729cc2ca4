package doctor

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/ltigrade/ltigrade/internal/spool"
)

// BacklogMaxAge is how old the oldest spooled launch may be before check
// "spool" fails. The hook's background ingestion records a login's launch
// within seconds, and the sync timer runs every 5 minutes: a launch older
// than two timer periods means neither is working, and that student's
// scores cannot be sent until it is recorded.
const BacklogMaxAge = 10 * time.Minute

// CheckSpool is checks "spool" (the hook's spool directory is safe and
// its backlog is being ingested) and "spool_failed" (launches refused into
// failed/, kept for an admin: a warning, since they will never be
// recorded on their own). Nothing is claimed or moved.
func CheckSpool(dir string, now time.Time) []Check {
	if dir == "" {
		return []Check{
			warn("spool", "", "no hub.spool_dir: a launch the hook cannot record is only logged, never retried",
				"set hub.spool_dir to a folder only ltigrade's user can write, e.g. /var/lib/ltigrade/spool"),
			skipped("spool_failed", "no spool directory"),
		}
	}
	if err := spool.CheckDir(dir); err != nil {
		return []Check{fail("spool", "", err.Error(), hintOf(err, "")), skipped("spool_failed", "needs a safe spool directory")}
	}
	b, err := spool.Inspect(dir)
	if err != nil {
		return []Check{fail("spool", "", err.Error(), ""), skipped("spool_failed", "needs a readable spool directory")}
	}
	var out []Check
	switch oldest := now.Sub(b.Oldest); {
	case b.Waiting == 0:
		out = append(out, ok("spool", "", dir+": empty"))
	case oldest > BacklogMaxAge:
		out = append(out, fail("spool", "", fmt.Sprintf("%s: %s waiting, the oldest for %s: nothing is ingesting them",
			dir, plural(b.Waiting, "launch", "launches"), age(oldest)),
			"run `ltigrade sync` as the hook's user and read its errors, then check sync_timer"))
	default:
		out = append(out, ok("spool", "", fmt.Sprintf("%s: %s waiting, the oldest for %s (the next ingestion records them)",
			dir, plural(b.Waiting, "launch", "launches"), age(oldest))))
	}
	if b.Foreign > 0 {
		c := &out[0]
		c.Detail += fmt.Sprintf("; %s of another user, which this user leaves alone", plural(b.Foreign, "file", "files"))
		if c.Status == StatusOK {
			c.Status, c.Hint = StatusWarn, "run doctor and sync as the user the hub hook runs as (root on TLJH)"
		}
	}
	failed := filepath.Join(dir, spool.FailedDir)
	if b.Failed == 0 {
		out = append(out, ok("spool_failed", "", failed+": empty"))
	} else {
		out = append(out, warn("spool_failed", "", fmt.Sprintf("%s: %s refused, the newest %s ago",
			failed, plural(b.Failed, "launch", "launches"), age(now.Sub(b.NewestFailed))),
			"the hub log says why each was refused; once fixed, `ltigrade record FILE` records one, then delete it"))
	}
	return out
}
