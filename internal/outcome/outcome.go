// Package outcome is the one vocabulary for what became of a request to an
// LMS, shared by the LTI 1.1 and the AGS clients: the outbox maps it to a
// passback's status in one place, and the CLI and the service report it the
// same way for both protocols.
package outcome

import "strconv"

// Status classifies what became of one request.
type Status int

// The zero Status is deliberately none of these, so an outcome that was
// never filled in cannot pass for a delivered grade.
const (
	// Sent: the LMS accepted the operation.
	Sent Status = iota + 1
	// Rejected: the LMS refused it for a reason resending will not fix
	// (bad sourcedId, bad credentials, score out of range, ...).
	Rejected
	// Retry: the outcome is unknown or the LMS was temporarily unable;
	// send again later (re-signed). Every operation is idempotent.
	Retry
	// Superseded: the LMS refused the score because it holds one with a
	// later timestamp (Moodle 409, Canvas 400 "before last updated").
	// Scores are stamped when created, so this one lost nothing.
	Superseded
)

func (s Status) String() string {
	switch s {
	case Sent:
		return "sent"
	case Rejected:
		return "rejected"
	case Retry:
		return "retry"
	case Superseded:
		return "superseded"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}
