package store

import (
	"errors"
	"fmt"
	"time"
)

// Submission statuses. A submission moves queued → grading → graded |
// failed; a grading whose owner died goes back to queued. Whether a graded
// one reached the LMS is its passback's status.
const (
	SubmissionQueued  = "queued"
	SubmissionGrading = "grading"
	SubmissionGraded  = "graded"
	SubmissionFailed  = "failed"
)

// Submission is a notebook a student submitted for server-side grading,
// journaled before it is graded so a restart re-grades it.
type Submission struct {
	ID        int64  `json:"id"`
	Username  string `json:"username"`
	SessionID int64  `json:"session_id"`
	LaunchID  int64  `json:"launch_id"`
	// Path is the notebook inside the student's root; Assignment the
	// launch's title, for messages.
	Path       string `json:"path"`
	Assignment string `json:"assignment"`
	Grader     int    `json:"grader"` // index into [[graders]]
	Content    []byte `json:"-"`
	Size       int    `json:"size"`

	Status     string     `json:"status"`
	Attempts   int        `json:"attempts"`
	Score      *float64   `json:"score,omitempty"`
	OutOf      *float64   `json:"out_of,omitempty"`
	PassbackID int64      `json:"passback_id,omitempty"`
	Reason     string     `json:"reason,omitempty"` // why it failed
	Output     string     `json:"output,omitempty"` // the grader's output tail
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`

	LeaseOwner string `json:"-"`
}

// SubmissionLimits are checked when a submission is added, in the same
// transaction: a student may submit once per Interval, and the queue holds
// at most MaxQueued.
type SubmissionLimits struct {
	Now       time.Time
	Interval  time.Duration
	MaxQueued int
}

// TooSoonError says the student submitted less than Interval ago.
type TooSoonError struct{ Wait time.Duration }

func (e *TooSoonError) Error() string {
	return fmt.Sprintf("you submitted less than a while ago; try again in %s", e.Wait.Round(time.Second))
}

// ErrQueueFull says the grading queue is full.
var ErrQueueFull = errors.New("the grading queue is full; try again in a few minutes")

// SubmissionFilter narrows ListSubmissions.
type SubmissionFilter struct {
	Username string
	Limit    int
}

// SubmissionResult is how a grading ended.
type SubmissionResult struct {
	Status     string // SubmissionGraded or SubmissionFailed (or SubmissionQueued to put it back)
	Score      *float64
	OutOf      *float64
	PassbackID int64
	Reason     string
	Output     string
	Now        time.Time
}
