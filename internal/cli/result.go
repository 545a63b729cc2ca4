package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/termsafe"
)

func newResultCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "result",
		Short: "Read or delete the grade the LMS holds for a notebook's launch",
	}
	for _, op := range []lti11.Op{lti11.ReadResult, lti11.DeleteResult} {
		cmd.AddCommand(newResultOpCmd(app, op))
	}
	return cmd
}

func newResultOpCmd(app *App, op lti11.Op) *cobra.Command {
	var user string
	var launchID int64
	var asJSON bool
	name := strings.TrimSuffix(string(op), "Result")
	short := map[lti11.Op]string{lti11.ReadResult: "Ask the LMS which grade it holds (readResult)",
		lti11.DeleteResult: "Delete the grade the LMS holds (deleteResult)"}[op]
	cmd := &cobra.Command{
		Use:     name + " NOTEBOOK",
		Short:   short,
		Example: fmt.Sprintf("  ltigrade result %s /home/jupyter-alice/materials/hw1/hw1.ipynb\n  ltigrade result %s --launch 42 x --json", name, name),
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			g, err := app.Local()
			if err != nil {
				return err
			}
			r, err := g.Result(app.Context(), grade.ResultRequest{Notebook: a[0], User: user, Cwd: app.cwd(), Launch: launchID, Op: op})
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(app.Out, r); err != nil {
					return err
				}
				return exitWith(r.Code())
			}
			switch {
			case r.Status != "success":
				fmt.Fprintf(app.Out, "%s failed (%s): %s\n", op, r.Status, termsafe.Field(dash(r.Message)))
			case op == lti11.DeleteResult:
				fmt.Fprintf(app.Out, "deleted the grade of %s (session %d)\n", termsafe.Field(r.Username), r.SessionID)
			case r.HasScore && r.ResultScore != nil:
				max := "1"
				if r.ResultMaximum != nil {
					max = fmtFloat(*r.ResultMaximum)
				}
				fmt.Fprintf(app.Out, "%s (%s/%s)\n", r.Score, fmtFloat(*r.ResultScore), max)
			case r.HasScore:
				fmt.Fprintf(app.Out, "%s\n", termsafe.Field(r.Score))
			default:
				fmt.Fprintf(app.Out, "no grade\n")
			}
			return exitWith(r.Code())
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "JupyterHub user; NOTEBOOK is then inside their notebook root")
	cmd.Flags().Int64Var(&launchID, "launch", 0, "use this launch instead of resolving NOTEBOOK")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return readsStore(app, cmd)
}
