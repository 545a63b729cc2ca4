package grade

import (
	"context"
	"errors"
	"fmt"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/spool"
	"github.com/ltigrade/ltigrade/internal/store"
)

// Exit codes: the one place they are defined. The CLI exits with them,
// the service sends them with every error (so the remote CLI exits the
// same), and `ltigrade help exit-codes` and the README print this table.
const (
	ExitOK          = 0 // success
	ExitError       = 1 // unexpected error
	ExitUsage       = 2 // usage or invalid input
	ExitNoSession   = 3 // no matching session
	ExitAmbiguous   = 4 // ambiguous: several assignments match
	ExitQueued      = 5 // queued for retry, not yet delivered
	ExitRejected    = 6 // rejected by the LMS
	ExitNotAllowed  = 7 // the grading service refused the token or the role
	ExitCheckFailed = 8 // a doctor check failed
)

// ExitCodes documents every exit code, in order.
var ExitCodes = []struct {
	Code int
	Text string
}{
	{ExitOK, "success"},
	{ExitError, "unexpected error (database unreadable, bug, ...)"},
	{ExitUsage, "usage error or invalid input (bad flag, malformed launch JSON, bad score, bad config)"},
	{ExitNoSession, "no matching session (resolve, score, result)"},
	{ExitAmbiguous, "ambiguous: several LMS assignments match equally well; candidates are listed"},
	{ExitQueued, "the score is journaled and queued for retry, not yet delivered (run `ltigrade sync`)"},
	{ExitRejected, "the LMS rejected the score; its message is shown and kept in `ltigrade passbacks list`"},
	{ExitNotAllowed, "not allowed: the grading service (LTIGRADE_URL) refused the token, or the user's role may not do this"},
	{ExitCheckFailed, "a doctor check failed; the checklist says what to fix (`ltigrade doctor`)"},
}

// Error carries an exit code and an optional hint with an error.
type Error struct {
	Code int
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Usagef is invalid input (exit 2).
func Usagef(format string, a ...any) error {
	return &Error{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// WithCode gives err an exit code and a hint.
func WithCode(code int, err error, hint string) error {
	return &Error{Code: code, Err: err, Hint: hint}
}

// hinter is an error that knows how it is fixed: config errors (a secret
// file's mode, an unknown consumer), key files and the spool directory name
// their own remedy, which no caller can guess from the command alone.
type hinter interface{ Hint() string }

// hintOf is the hint the error carries, else fallback (the caller's own
// guess): the error knows the exact cause, the caller only the likely one.
func hintOf(err error, fallback string) string {
	var h hinter
	if errors.As(err, &h) && h.Hint() != "" {
		return h.Hint()
	}
	return fallback
}

// ExitCode maps an error to its documented exit code and a hint.
func ExitCode(err error) (int, string) {
	var ee *Error
	var inv *launch.InvalidError
	var in *resolve.InputError
	var nf *resolve.NotFoundError
	var amb *resolve.AmbiguousError
	var spoolDir *spool.UnsafeDirError
	var su *config.SecretUnavailableError
	switch {
	case err == nil:
		return ExitOK, ""
	case errors.As(err, &ee):
		return ee.Code, hintOf(ee.Err, ee.Hint)
	case errors.As(err, &su):
		return ExitUsage, su.Hint
	case errors.Is(err, config.ErrConfig):
		return ExitUsage, hintOf(err, "")
	case errors.As(err, &inv), errors.As(err, &in):
		return ExitUsage, ""
	case errors.As(err, &spoolDir):
		return ExitUsage, spoolDir.Hint()
	case errors.As(err, &nf):
		return ExitNoSession, nf.Hint()
	case errors.As(err, &amb):
		return ExitAmbiguous, amb.Hint()
	case errors.Is(err, store.ErrNotFound):
		return ExitNoSession, ""
	case errors.Is(err, context.Canceled):
		return ExitError, "interrupted"
	}
	// An unexpected error may still know its likely fix (a database that
	// refuses the password, say).
	return ExitError, hintOf(err, "")
}

// Severity orders exit codes of many rows: the most serious wins.
var Severity = map[int]int{ExitOK: 0, ExitQueued: 1, ExitNoSession: 2, ExitAmbiguous: 3, ExitRejected: 4}

// StatusCode is the exit code of one passback's state: delivered (or
// superseded by a newer score, which the LMS will hold) is success.
func StatusCode(status string) int {
	switch status {
	case store.StatusSent, store.StatusSuperseded:
		return ExitOK
	case store.StatusRejected:
		return ExitRejected
	}
	return ExitQueued
}
