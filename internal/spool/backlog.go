package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Backlog is what waits in a spool directory: launches not yet recorded
// and files refused into failed/. `ltigrade doctor` reports it; the hook
// spools every login and its background ingestion normally empties the
// spool within seconds, so an old launch here means nothing ingests.
type Backlog struct {
	Waiting int       // launches an ingestion would take now
	Oldest  time.Time // modification time of the oldest waiting launch
	Foreign int       // launches of other users, left for their owner
	Failed  int       // files in failed/
	// NewestFailed is the modification time of the newest file in failed/.
	NewestFailed time.Time
}

// Inspect counts the backlog of dir without claiming, reading or moving
// anything. A missing directory (nothing was ever spooled) is empty.
func Inspect(dir string) (Backlog, error) {
	var b Backlog
	names, skipped, err := candidates(dir)
	if err != nil {
		return b, err
	}
	b.Foreign = skipped
	for _, n := range names {
		fi, err := os.Lstat(filepath.Join(dir, n))
		if err != nil {
			continue // ingested meanwhile
		}
		b.Waiting++
		if b.Oldest.IsZero() || fi.ModTime().Before(b.Oldest) {
			b.Oldest = fi.ModTime()
		}
	}
	entries, err := os.ReadDir(filepath.Join(dir, FailedDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return b, fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		b.Failed++
		if fi.ModTime().After(b.NewestFailed) {
			b.NewestFailed = fi.ModTime()
		}
	}
	return b, nil
}
