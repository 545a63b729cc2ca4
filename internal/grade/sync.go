package grade

import (
	"context"

	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/store"
)

// SyncRequest asks to send what is due; Now ignores the retry backoff.
// IDs, if set, sends just those passbacks now (the status page's retry).
type SyncRequest struct {
	Now bool    `json:"now,omitempty"`
	IDs []int64 `json:"ids,omitempty"`
}

// SyncReport is the --json of sync: the passback counts, then the spooled
// launches recorded and moved to failed/.
type SyncReport struct {
	passback.Stats
	Ingested    int `json:"ingested"`
	SpoolFailed int `json:"spool_failed"`
	// StillQueued counts scores not delivered after this run (backoff not
	// yet over, or waiting behind an earlier attempt): exit code 5.
	StillQueued int `json:"still_queued"`
	// SpoolDir is where the launches came from ("" when none).
	SpoolDir string `json:"spool_dir,omitempty"`
	// Passbacks are the rows IDs asked for, as stored afterwards.
	Passbacks []store.Passback `json:"passbacks,omitempty"`
}

// Code: 6 when the LMS rejected a score in this run, 5 while scores are
// still queued, else 0.
func (r *SyncReport) Code() int {
	switch {
	case r.Rejected > 0:
		return ExitRejected
	case r.Retry > 0 || r.StillQueued > 0:
		return ExitQueued
	}
	return ExitOK
}

// Sync records the spooled launches (a score may need one to find its
// session; their problems never hold back queued scores), then sends every
// queued score that is due, re-sending rows of senders that died.
func (g *Local) Sync(ctx context.Context, r SyncRequest) (*SyncReport, error) {
	rep := &SyncReport{SpoolDir: g.Config.Hub.SpoolDir}
	ingested, err := g.IngestSpool(ctx)
	if err != nil {
		g.warn("spooled launches not ingested: %v", err)
	}
	rep.Ingested, rep.SpoolFailed = ingested.Ingested, ingested.Failed
	eng := g.engine(g.Config.Passback.Concurrency, g.Sender(g.Config.Passback.Concurrency))
	if len(r.IDs) > 0 {
		got, err := eng.SendNow(ctx, r.IDs, 0)
		if err != nil {
			return nil, err
		}
		rep.Passbacks = got
		for _, p := range got {
			switch p.Status {
			case store.StatusSent:
				rep.Sent++
			case store.StatusRejected:
				rep.Rejected++
			case store.StatusSuperseded:
				rep.Superseded++
			default:
				rep.Retry++
			}
		}
	} else {
		if rep.Stats, err = eng.Drain(ctx, r.Now); err != nil {
			return nil, err
		}
	}
	left, err := g.Store.ListPassbacks(ctx, store.PassbackFilter{
		Statuses: []string{store.StatusPending, store.StatusSending, store.StatusRetry}})
	if err != nil {
		return nil, err
	}
	rep.StillQueued = len(left)
	g.learnLabels(ctx)
	// For monitoring (the service's ltigrade_last_sync_timestamp_seconds),
	// whichever process ran it; a failed write costs only that figure. A
	// retry of a few rows (IDs) is not a run through the outbox.
	if len(r.IDs) > 0 {
		return rep, nil
	}
	if err := g.Store.SyncFinished(context.WithoutCancel(ctx), g.now()); err != nil {
		g.warn("the end of this sync was not recorded: %v", err)
	}
	return rep, nil
}
