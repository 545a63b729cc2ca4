package store

import "time"

// OutboxStats is the state of the outbox at one moment, for monitoring.
type OutboxStats struct {
	// Statuses counts passbacks by status; every status in Statuses is
	// present, zero included, so a monitor sees a status drop to 0.
	Statuses map[string]int64
	// OldestUnsent is when the oldest score still owed to an LMS (pending,
	// sending or retry) was journaled; zero when none is owed.
	OldestUnsent time.Time
	// LastSync is when a sync run last finished; zero if none ever did.
	LastSync time.Time
}

// runSync names the sync run in the runs table.
const runSync = "sync"

// unsentStatuses are the statuses of scores still owed to an LMS.
var unsentStatuses = []string{StatusPending, StatusSending, StatusRetry}

func newOutboxStats() OutboxStats {
	st := OutboxStats{Statuses: make(map[string]int64, len(Statuses))}
	for _, s := range Statuses {
		st.Statuses[s] = 0
	}
	return st
}
