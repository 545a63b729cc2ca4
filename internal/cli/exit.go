package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ltigrade/ltigrade/internal/grade"
)

// Exit codes are defined in one place, package grade (the service sends
// them too, so the remote CLI exits the same); these names keep the
// commands short.
const (
	ExitOK          = grade.ExitOK
	ExitError       = grade.ExitError
	ExitUsage       = grade.ExitUsage
	ExitNoSession   = grade.ExitNoSession
	ExitAmbiguous   = grade.ExitAmbiguous
	ExitQueued      = grade.ExitQueued
	ExitRejected    = grade.ExitRejected
	ExitNotAllowed  = grade.ExitNotAllowed
	ExitCheckFailed = grade.ExitCheckFailed
)

func usageErr(format string, a ...any) error { return grade.Usagef(format, a...) }

func withCode(code int, err error, hint string) error { return grade.WithCode(code, err, hint) }

// silentExit ends the command with a code after it printed its own report.
type silentExit struct{ code int }

func (e *silentExit) Error() string { return fmt.Sprintf("exit %d", e.code) }

// exitWith ends a command that printed its result with that result's code.
func exitWith(code int) error {
	if code == ExitOK {
		return nil
	}
	return &silentExit{code: code}
}

// exitCode maps an error to its documented exit code and a hint: the
// domain's mapping (grade.ExitCode), plus the CLI's own flag errors.
func exitCode(err error) (int, string) {
	var se *silentExit
	switch {
	case err == nil:
		return ExitOK, ""
	case errors.As(err, &se):
		return se.code, ""
	}
	code, hint := grade.ExitCode(err)
	if code == ExitError && isFlagError(err) {
		return ExitUsage, ""
	}
	return code, hint
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
