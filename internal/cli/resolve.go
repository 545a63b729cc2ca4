package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/termsafe"
)

// resolveRule is the coverage rule, for resolve --help (docs/resolve.md
// has it with a table of course layouts).
const resolveRule = `A score goes only to a launch that covers the notebook, by what its nbgitpuller
link opened:
  - a folder: that folder and everything below it;
  - a notebook in a subfolder of the checkout: that notebook's folder, unless a
    launch of the same course (any user) opened a different notebook directly in
    that folder: the folder then holds several assignments, and the launch covers
    its notebook only;
  - a notebook at the checkout root (flat layout): that notebook only;
  - the checkout root, or a link without urlpath: the whole checkout;
  - no nbgitpuller link: nothing (only --launch ID reaches it).
A folder or checkout launch never covers a notebook that another assignment of
its course opened. Among the launches that cover the notebook, the one that
opened exactly this notebook wins, then the deepest covering folder, then a
covering checkout; within one assignment the newest launch. An LTI 1.3 link
taken from the browser's unsigned login request counts only where other users'
launches of the same assignment opened the same path.`

func newResolveCmd(app *App) *cobra.Command {
	var user string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "resolve NOTEBOOK",
		Short: "Find the launch (LMS assignment) a notebook's score belongs to",
		Long: `Find the session a score for NOTEBOOK belongs to.

An absolute path is matched against paths.home and paths.patterns to learn the user
and the path inside their notebook root; a relative path is taken from the current
directory, or, with --user, inside that user's notebook root. Launches the hub hook
spooled and nobody recorded yet are recorded first.

` + resolveRule + `

Exit codes: 3 when no launch covers the notebook (the user's launches in that
checkout are listed with what each covers), 4 when two LMS assignments match
equally well, or the match rests on an unconfirmed unsigned link.`,
		Example: `  ltigrade resolve /home/jupyter-alice/materials/hw1/hw1.ipynb
  ltigrade resolve --user alice materials/hw1/hw1.ipynb --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			g, err := app.Grader()
			if err != nil {
				return err
			}
			res, err := g.Resolve(app.Context(), grade.ResolveRequest{Notebook: a[0], User: user, Cwd: app.cwd()})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Out, res)
			}
			s := res.Match.Session
			_, err = fmt.Fprintf(app.Out, "%s → session %d (launch %d): %s, %q in %s, matched by %s; covers %s\n",
				termsafe.Field(res.Path), s.ID, s.LaunchID, termsafe.Field(s.Username), termsafe.Field(s.Assignment()),
				termsafe.Field(dash(s.ContextLabel)), res.Match.How, termsafe.Field(res.Match.Path))
			return err
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "JupyterHub user; NOTEBOOK is then inside their notebook root")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, including how it matched and what each candidate covers")
	return readsStore(app, cmd)
}
