// Package store keeps launches, current sessions and the passback outbox.
//
// The Store interface is what the rest of ltigrade uses, and Open picks the
// implementation by the database value: SQLite (sqlite*.go), the embedded
// default for one machine, or PostgreSQL (postgres*.go) for writers on
// several hosts. Both pass the one conformance suite in storetest, which
// includes the concurrency and ordering properties the outbox relies on.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a session, launch or passback does not exist.
var ErrNotFound = errors.New("not found")

// Launch is one recorded LTI launch, flattened for storage and listing.
type Launch struct {
	ID        int64 `json:"id"`
	SessionID int64 `json:"session_id"`

	Username          string `json:"username"`
	Version           string `json:"lti_version"`
	Platform          string `json:"platform"` // LTI 1.1 consumer key, LTI 1.3 issuer
	ClientID          string `json:"client_id,omitempty"`
	DeploymentID      string `json:"deployment_id,omitempty"`
	LTIUserID         string `json:"lti_user_id"`
	ResourceLinkID    string `json:"resource_link_id"`
	ResourceLinkTitle string `json:"assignment"`
	ContextID         string `json:"course_id"`
	ContextLabel      string `json:"course_label"`
	ContextTitle      string `json:"course"`
	Roles             string `json:"roles,omitempty"`

	OutcomeURL          string   `json:"outcome_url,omitempty"`
	SourcedID           string   `json:"sourcedid,omitempty"`
	ResultDataAccepted  []string `json:"result_data_accepted,omitempty"`
	SubmittedAtAccepted bool     `json:"submitted_at_accepted,omitempty"`

	LineItem  string   `json:"lineitem,omitempty"`
	LineItems string   `json:"lineitems,omitempty"`
	AGSScopes []string `json:"ags_scopes,omitempty"`

	NextURL    string `json:"next_url,omitempty"`
	Repo       string `json:"repo,omitempty"`
	Checkout   string `json:"checkout"` // relative to the user's notebook root
	Opened     string `json:"opened"`   // relative to the user's notebook root
	OpenedFile bool   `json:"opened_is_file"`
	// NextSigned says the link came from data the LMS signed (LTI 1.1
	// launch parameters; LTI 1.3 id_token claims). An unsigned link (LTI
	// 1.3's login-initiation next) only counts where other launches of the
	// same resource link confirm it (package resolve).
	NextSigned bool `json:"next_signed"`
	// UnsignedNext is the browser's unsigned next when it disagreed with
	// the signed one and was ignored: a sign of a replayed or edited login.
	UnsignedNext string `json:"unsigned_next_ignored,omitempty"`
	// PullError says why the nbgitpuller link was refused; the launch is
	// then kept without a checkout and covers no notebook.
	PullError string `json:"pull_error,omitempty"`
	// Origin is "" for a launch the LMS made, "roster" for a session
	// ltigrade made from the course roster for a student who never
	// launched (LTI 1.3; see package grade).
	Origin string `json:"origin,omitempty"`

	LaunchedAt time.Time `json:"launched_at"`
	RecordedAt time.Time `json:"recorded_at"`
	AuthState  []byte    `json:"-"`
}

// Session is the current (newest) launch of one (platform, LTI user,
// resource link); Launch holds that launch.
type Session struct {
	ID          int64 `json:"id"`
	LaunchID    int64 `json:"launch_id"`
	LaunchCount int   `json:"launch_count"`
	Launch
	// LineItemLabel is the label of the session's line item when its
	// resource link has no title (filled by listings, not stored here).
	LineItemLabel string `json:"lineitem_label,omitempty"`
}

// Assignment names the session's assignment: the resource link's title,
// else its line item's label (Open edX sends no title), else "".
func (s *Session) Assignment() string {
	if s.ResourceLinkTitle != "" {
		return s.ResourceLinkTitle
	}
	return s.LineItemLabel
}

// LineItemRef is a line item and the registration that may read it.
type LineItemRef struct {
	LineItem  string
	Platform  string
	ClientID  string
	AGSScopes []string
}

// LineItemLabel is a line item's label as the platform told it, when.
type LineItemLabel struct {
	LineItem  string
	Label     string
	CheckedAt time.Time
}

// SessionFilter narrows ListSessions; zero values match everything.
type SessionFilter struct {
	Username string
	Course   string // matches context id, label or title
	Since    time.Time
	All      bool // every launch instead of current sessions
	Limit    int
}

// Passback statuses. A row moves pending → sending → sent | rejected | retry,
// retry → sending → ..., and any unsent row becomes superseded once a newer
// score exists for its session.
const (
	StatusPending    = "pending"
	StatusSending    = "sending"
	StatusSent       = "sent"
	StatusRetry      = "retry"
	StatusRejected   = "rejected"
	StatusSuperseded = "superseded"
)

// Statuses lists every passback status, for flag validation and help.
var Statuses = []string{StatusPending, StatusSending, StatusSent, StatusRetry, StatusRejected, StatusSuperseded}

// Passback is one journaled score and the state of its delivery.
type Passback struct {
	ID        int64  `json:"id"`
	SessionID int64  `json:"session_id"`
	LaunchID  int64  `json:"launch_id"`
	Username  string `json:"username"`
	Notebook  string `json:"notebook"`

	Score      string  `json:"score"` // the decimal text sent to the LMS, in [0,1]
	ScoreGiven float64 `json:"score_given"`
	ScoreMax   float64 `json:"score_maximum"`
	Comment    string  `json:"comment,omitempty"`

	Protocol    string `json:"protocol"`               // "lti11" or "ags"
	TargetURL   string `json:"target_url"`             // LTI 1.1 outcome URL; AGS line item ("" until found)
	SourcedID   string `json:"sourcedid,omitempty"`    // LTI 1.1 sourcedId; AGS userId (the launch's sub)
	ConsumerKey string `json:"consumer_key,omitempty"` // LTI 1.1 consumer key; AGS issuer
	// AGS only: the registration, and where to find the line item when the
	// launch named none.
	ClientID       string `json:"client_id,omitempty"`
	LineItems      string `json:"lineitems,omitempty"`
	ResourceLinkID string `json:"resource_link_id,omitempty"`
	ResultData     string `json:"result_data,omitempty"`
	SubmittedAt    string `json:"submitted_at,omitempty"`

	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	HTTPStatus    int        `json:"http_status,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	SentAt        *time.Time `json:"sent_at,omitempty"`

	LeaseOwner string     `json:"-"`
	LeaseUntil *time.Time `json:"-"`
}

// PassbackFilter narrows ListPassbacks.
type PassbackFilter struct {
	Statuses []string
	Username string
	Limit    int
}

// Result is what one delivery attempt ended with.
type Result struct {
	Status     string // StatusSent, StatusRejected, StatusRetry, or StatusSuperseded (the LMS holds a newer score)
	Message    string
	HTTPStatus int
	NextTry    time.Time // for StatusRetry
	// Uncertain marks a retry whose request may have reached the LMS
	// without an answer (timeout, dropped connection): newer scores of the
	// session then wait until the attempt's lease ends.
	Uncertain bool
	// Unattempted marks a row that was leased but handed back unsent (a
	// batch claimed it ahead and could not send it in time): the claim's
	// count of an attempt is taken back, so Attempts counts requests.
	Unattempted bool
}

// Claim asks for passbacks to send. Owner identifies the claiming process;
// rows it claims stay leased to it until LeaseUntil.
type Claim struct {
	Owner         string
	Now           time.Time
	LeaseUntil    time.Time
	IgnoreBackoff bool
	// SkipFailedSince, if set, leaves out rows that failed at or after it.
	SkipFailedSince time.Time
	Limit           int
	// OwnerAlive reports whether another lease owner still runs; a dead
	// owner's lease is void at once. Nil means leases only expire by time.
	OwnerAlive func(owner string) bool
}

// Store is the persistence ltigrade needs. Implementations must be safe for
// concurrent use by several processes on one database.
type Store interface {
	// RecordLaunch stores l and makes it the current launch of its session
	// unless that session already has a newer launch. It fills l.ID and
	// l.SessionID and returns the session as it is after the write.
	RecordLaunch(ctx context.Context, l *Launch) (*Session, error)
	// RecordLaunches records many launches in one transaction (imports,
	// spool ingestion, seeding), filling their IDs and SessionIDs.
	RecordLaunches(ctx context.Context, ls []*Launch) error
	Session(ctx context.Context, id int64) (*Session, error)
	Launch(ctx context.Context, id int64) (*Launch, error)
	ListSessions(ctx context.Context, f SessionFilter) ([]Session, error)
	// UserSessions returns the current sessions of one user, newest first.
	UserSessions(ctx context.Context, username string) ([]Session, error)
	// UsersSessions returns the current sessions of many users at once
	// (a batch resolves thousands of rows), each user's newest first, as
	// UserSessions would, except that AuthState is left empty (most of a
	// launch's bytes, never needed to resolve); users without sessions
	// have no key.
	UsersSessions(ctx context.Context, usernames []string) (map[string][]Session, error)
	// UsernamesWithPrefix lists stored usernames starting with prefix.
	UsernamesWithPrefix(ctx context.Context, prefix string) ([]string, error)
	// CourseNotebooks lists the notebooks any launch of a course (platform
	// and context id) opened, with their resource links.
	CourseNotebooks(ctx context.Context, platform, contextID string) ([]CourseNotebook, error)
	// LinkSessions lists, per resource link, the newest current session
	// whose launch cloned into checkout (LMS launches only): the
	// assignments a notebook of that checkout may belong to.
	LinkSessions(ctx context.Context, checkout string) ([]Session, error)
	// LinkOpenings lists what the launches of one resource link opened,
	// per user (launches without a checkout left out).
	LinkOpenings(ctx context.Context, platform, resourceLinkID string) ([]LinkOpening, error)
	// Prune deletes launches older than before, and sessions (with their
	// finished passbacks) whose current launch is older than before. It
	// keeps sessions with undelivered passbacks.
	Prune(ctx context.Context, before time.Time) (PruneStats, error)

	// Enqueue journals passbacks (in one transaction) and fills their IDs.
	Enqueue(ctx context.Context, ps []*Passback) error
	// ClaimIDs leases the given rows if they are still the newest unsent
	// score of their session and nothing else of that session is in flight.
	ClaimIDs(ctx context.Context, c Claim, ids []int64) ([]Passback, error)
	// ClaimDue leases up to c.Limit rows that are due, newest per session.
	ClaimDue(ctx context.Context, c Claim) ([]Passback, error)
	// Complete records attempt results of rows leased by owner. A row whose
	// lease was lost is left alone (its new holder decides).
	Complete(ctx context.Context, owner string, now time.Time, results map[int64]Result) error
	Passback(ctx context.Context, id int64) (*Passback, error)
	ListPassbacks(ctx context.Context, f PassbackFilter) ([]Passback, error)
	// OutboxStats counts the outbox by status and says how old its oldest
	// undelivered score is and when a sync run last finished, in one
	// cheap read (a metrics scrape calls it every few seconds).
	OutboxStats(ctx context.Context) (OutboxStats, error)
	// SyncFinished records that a sync run (any process's) ended at.
	SyncFinished(ctx context.Context, at time.Time) error

	// SetLineItem keeps the AGS line item found for a launch that named
	// only its container, on the launch and its undelivered scores.
	SetLineItem(ctx context.Context, launchID, sessionID int64, lineitem string) error
	// UnlabeledLineItems lists up to limit line items of current LTI 1.3
	// sessions whose resource link has no title and whose label is not
	// known, leaving out those checked (in vain) after checkedBefore.
	UnlabeledLineItems(ctx context.Context, checkedBefore time.Time, limit int) ([]LineItemRef, error)
	// SetLineItemLabels keeps line item labels ("" = looked up in vain).
	SetLineItemLabels(ctx context.Context, labels []LineItemLabel) error
	// LineItemLabels returns the known, non-empty labels of line items.
	LineItemLabels(ctx context.Context, lineitems []string) (map[string]string, error)
	// Token and PutToken cache AGS access tokens for every process.
	Token(ctx context.Context, key string, now time.Time) (token string, expires time.Time, ok bool, err error)
	PutToken(ctx context.Context, key, token string, expires time.Time) error

	// AddSubmission journals a submission (queued), checking the limits
	// in the same transaction: *TooSoonError or ErrQueueFull refuse it.
	AddSubmission(ctx context.Context, s *Submission, lim SubmissionLimits) error
	// ClaimSubmission leases the oldest queued submission of a student who
	// has none grading, first putting back gradings whose owner is gone;
	// nil when there is none.
	ClaimSubmission(ctx context.Context, owner string, now time.Time, alive func(owner string) bool) (*Submission, error)
	// FinishSubmission records how a grading ended, if owner still holds it.
	FinishSubmission(ctx context.Context, id int64, owner string, r SubmissionResult) error
	Submission(ctx context.Context, id int64) (*Submission, error)
	ListSubmissions(ctx context.Context, f SubmissionFilter) ([]Submission, error)
	// Warnings are problems found on opening that the store worked around
	// or that the operator should know (a database file others could read,
	// a PostgreSQL connection without TLS), for the caller to show: the
	// store prints nothing.
	Warnings() []string

	Close() error
}

// CourseNotebook is a notebook some launch of a course opened, and the
// resource link (assignment) of that launch.
type CourseNotebook struct {
	Path           string `json:"path"`
	ResourceLinkID string `json:"resource_link_id"`
}

// LinkOpening is what one user's launches of a resource link opened.
type LinkOpening struct {
	Username   string
	Opened     string
	OpenedFile bool
	Signed     bool
}

// PruneStats says what Prune removed.
type PruneStats struct {
	Launches  int64 `json:"launches"`
	Sessions  int64 `json:"sessions"`
	Passbacks int64 `json:"passbacks"`
}
