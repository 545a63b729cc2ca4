package grade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/spool"
	"github.com/ltigrade/ltigrade/internal/store"
)

// ingestBatch is how many spooled launches share one transaction: one
// fsync per batch instead of per launch, and a bounded redo if the process
// dies between the commit and the deletes.
const ingestBatch = 100

func (g *Local) warn(format string, a ...any) {
	if g.Warn != nil {
		g.Warn(fmt.Sprintf(format, a...))
	}
}

// IngestSpool records the hook's spooled launches (see package spool) the
// way record does, a batch per transaction. Each file moved to failed/ and
// each launch warning is passed to Warn.
func (g *Local) IngestSpool(ctx context.Context) (spool.Stats, error) {
	dir := g.Config.Hub.SpoolDir
	if dir == "" {
		return spool.Stats{}, nil
	}
	var staged []*store.Launch
	st, err := spool.IngestBatch(ctx, dir, spool.Batch{
		Size: ingestBatch,
		Add: func(data []byte) error {
			l, err := launch.Parse(data, g.now())
			if err != nil {
				return err
			}
			for _, w := range l.Warnings {
				g.warn("%s", w)
			}
			sl := l.StoreLaunch(g.Config.Paths.NbgitpullerParent)
			sl.RecordedAt = g.now()
			staged = append(staged, sl)
			return nil
		},
		Commit: func() error {
			defer func() { staged = nil }()
			return g.Store.RecordLaunches(ctx, staged)
		},
	})
	for _, f := range st.Failures {
		g.warn("spooled launch %s: %s", f.File, f.Error)
	}
	return st, err
}

// CatchUpSpool records what the hub hook spooled and nobody has recorded
// yet, before a notebook is resolved: the hook records in the background a
// few seconds after a login (or, if its recorder failed, at the next
// sync), and a score resolved in that window would not see the launch the
// student just made. With an empty spool this costs one directory listing.
// A spool this process cannot read is not an error, but Warn is told that
// recent launches may be missing.
func (g *Local) CatchUpSpool(ctx context.Context) {
	dir := g.Config.Hub.SpoolDir
	if dir == "" {
		return
	}
	pending, err := SpoolPending(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		g.warn("cannot read the hub's spool %s (%v): launches of the last few seconds may not be seen yet", dir, unwrapPathErr(err))
		return
	case !pending:
		return
	}
	if _, err := g.IngestSpool(ctx); err != nil {
		g.warn("spooled launches not recorded (%v): launches of the last few seconds may not be seen yet", err)
	}
}

// SpoolPending reports whether the spool directory holds anything to
// record: a launch file, or a claim a dead ingester may have left.
func SpoolPending(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(64)
		for _, n := range names {
			if n != spool.FailedDir && !strings.HasPrefix(n, ".tmp-") {
				return true, nil
			}
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
