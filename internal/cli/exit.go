package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/spool"
	"github.com/ltigrade/ltigrade/internal/store"
)

// Exit codes: the one place they are defined. `ltigrade help exit-codes`
// and the README print this table.
const (
	ExitOK        = 0 // success
	ExitError     = 1 // unexpected error
	ExitUsage     = 2 // usage or invalid input
	ExitNoSession = 3 // no matching session
	ExitAmbiguous = 4 // ambiguous: several assignments match
	ExitQueued    = 5 // queued for retry, not yet delivered
	ExitRejected  = 6 // rejected by the LMS
)

var exitCodeHelp = []struct {
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
}

// exitError carries an exit code and an optional hint with an error.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, a...)}
}

func withCode(code int, err error, hint string) error {
	return &exitError{code: code, err: err, hint: hint}
}

// silentExit ends the command with a code after it printed its own report.
type silentExit struct{ code int }

func (e *silentExit) Error() string { return fmt.Sprintf("exit %d", e.code) }

// exitCode maps an error to its documented exit code and a hint.
func exitCode(err error) (int, string) {
	var ee *exitError
	var inv *launch.InvalidError
	var in *resolve.InputError
	var nf *resolve.NotFoundError
	var amb *resolve.AmbiguousError
	var se *silentExit
	var spoolDir *spool.UnsafeDirError
	switch {
	case err == nil:
		return ExitOK, ""
	case errors.As(err, &se):
		return se.code, ""
	case errors.As(err, &ee):
		return ee.code, hintOf(ee.err, ee.hint)
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
	case isFlagError(err):
		return ExitUsage, ""
	}
	// An unexpected error may still know its likely fix (a database that
	// refuses the password, say).
	return ExitError, hintOf(err, "")
}

// hinter is an error that knows how it is fixed: config errors (a secret
// file's mode, an unknown consumer), key files and the spool directory name
// their own remedy, which no caller can guess from the command alone.
type hinter interface{ Hint() string }

// hintOf is the hint the error carries, else fallback (the command's own
// guess): the error knows the exact cause, the command only the likely one.
func hintOf(err error, fallback string) string {
	var h hinter
	if errors.As(err, &h) && h.Hint() != "" {
		return h.Hint()
	}
	return fallback
}

// isFlagError recognises cobra/pflag argument errors, which are not typed.
func isFlagError(err error) bool {
	m := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "flag needs an argument",
		"invalid argument", "unknown command", "accepts ", "requires at least", "requires at most",
		"if any flags in the group", "required flag"} {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}
