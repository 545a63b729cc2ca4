package cli

import (
	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/sandbox"
)

// newSandboxExecCmd is the hidden entry point of the grading sandbox's
// inner stages: sandbox.Run starts this binary again with it, inside new
// namespaces, and hands it the spec on a pipe. It is not for people.
func newSandboxExecCmd(_ *App) *cobra.Command {
	return &cobra.Command{
		Use:    sandbox.ExecCommand + " STAGE",
		Short:  "Run a stage of the grading sandbox (started by the service itself)",
		Hidden: true,
		Args:   args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			return exitWith(sandbox.Exec(a))
		},
	}
}
