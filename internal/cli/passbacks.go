package cli

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/store"
)

func newPassbacksCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "passbacks", Short: "Inspect the outbox of journaled scores"}
	var f store.PassbackFilter
	var statuses []string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List journaled scores and their delivery status",
		Long: "Statuses: " + strings.Join(store.Statuses, ", ") + `.
"queued" selects pending, sending and retry together.`,
		Example: `  ltigrade passbacks list
  ltigrade passbacks list --status retry,rejected --json
  ltigrade passbacks list --user alice`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range statuses {
				for _, s := range strings.Split(s, ",") {
					switch {
					case s == "queued":
						f.Statuses = append(f.Statuses, store.StatusPending, store.StatusSending, store.StatusRetry)
					case contains(store.Statuses, s):
						f.Statuses = append(f.Statuses, strings.ToLower(s))
					default:
						return usageErr("unknown status %q: want one of %s, queued", s, strings.Join(store.Statuses, ", "))
					}
				}
			}
			g, err := app.Grader()
			if err != nil {
				return err
			}
			list, err := g.Passbacks(app.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []store.Passback{}
				}
				return printJSON(app.Out, list)
			}
			var rows [][]string
			for _, p := range list {
				rows = append(rows, []string{strconv.FormatInt(p.ID, 10), p.Username, p.Notebook, p.Score, p.Status,
					strconv.Itoa(p.Attempts), app.fmtTime(p.CreatedAt), dash(p.LastError)})
			}
			return app.printTable([]string{"ID", "USER", "NOTEBOOK", "SCORE", "STATUS", "TRIES", "CREATED", "MESSAGE"}, rows)
		},
	}
	list.Flags().StringSliceVar(&statuses, "status", nil, "only these statuses (comma-separated; or queued)")
	list.Flags().StringVar(&f.Username, "user", "", "only this user")
	list.Flags().IntVar(&f.Limit, "limit", 0, "at most this many rows (0: all)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(readsStore(app, list))
	return cmd
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
