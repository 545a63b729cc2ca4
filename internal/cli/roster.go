package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/termsafe"
)

func newRosterCmd(app *App) *cobra.Command {
	var r grade.RosterRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "roster",
		Short: "A course's members, their hub user names, and which assignments they launched",
		Long: `List the members of each course (or of --course) with their hub user names, roles and
the assignments they launched.

For LTI 1.3 the members come from the platform's Names and Role Provisioning Service
(the NRPS claim of any launch of the course; the tool needs the
contextmembership.readonly scope). A member who launched is mapped to the hub user of
their launches; one who never launched by the platform's username_key
([[lti13.platforms]] username_key, default email, as LTI13Authenticator does), lowercased.
LTI 1.1 has no roster service: its courses are listed from launches alone, and say so.

With --missing only the active learners who never launched (with --assignment: never
launched that assignment) are listed.`,
		Example: `  ltigrade roster --course DS100
  ltigrade roster --course DS100 --assignment "Homework 2" --missing
  ltigrade roster --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, err := app.Local()
			if err != nil {
				return err
			}
			reps, err := g.Roster(app.Context(), r)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Out, reps)
			}
			var rows [][]string
			for _, rep := range reps {
				if rep.Note != "" {
					fmt.Fprintf(app.Err, "%s: %s\n", termsafe.Field(rep.Name()), rep.Note)
				}
				for _, m := range rep.Members {
					rows = append(rows, []string{rep.Name(), dash(m.HubUser), m.LMSUserID, dash(m.Name), dash(m.Role),
						dash(strings.Join(m.Launched, ", "))})
				}
			}
			return app.printTable([]string{"COURSE", "HUB USER", "LMS ID", "NAME", "ROLE", "LAUNCHED"}, rows)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&r.Course, "course", "", "only this course (context id, label or title)")
	fl.StringVar(&r.Assignment, "assignment", "", "launched: only this assignment (resource link id or title)")
	fl.BoolVar(&r.Missing, "missing", false, "only the learners who never launched (the assignment)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return readsStore(app, cmd)
}

func newLineItemsCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "lineitems", Short: "List or create a course's gradebook columns (LTI 1.3 AGS line items)"}
	var course string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list --course C",
		Short: "List the course's gradebook columns",
		Example: `  ltigrade lineitems list --course DS100
  ltigrade lineitems list --course DS100 --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, err := app.Local()
			if err != nil {
				return err
			}
			rep, err := g.ListLineItems(app.Context(), course)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Out, rep)
			}
			var rows [][]string
			for _, it := range rep.LineItems {
				rows = append(rows, []string{it.ID, dash(it.Label), fmtFloat(it.ScoreMaximum), dash(it.ResourceID), dash(it.ResourceLinkID), dash(it.Tag)})
			}
			return app.printTable([]string{"LINE ITEM", "LABEL", "MAX", "RESOURCE ID", "RESOURCE LINK", "TAG"}, rows)
		},
	}
	list.Flags().StringVar(&course, "course", "", "the course (context id, label or title)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var c grade.CreateLineItemRequest
	var cJSON bool
	create := &cobra.Command{
		Use:   "create --course C --label L --max M --resource-id R [--tag T]",
		Short: "Create a gradebook column (or reuse the one with the same resource id)",
		Long: `Create a gradebook column for a notebook that has no LMS assignment (AGS, scope lineitem).
A column with the same --resource-id is reused, so running it twice makes one column.
Then send scores to it with: ltigrade score NOTEBOOK SCORE --resource-id R (any roster member).`,
		Example: `  ltigrade lineitems create --course DS100 --label "Lab 7" --max 10 --resource-id lab7
  ltigrade score --user alice lab7/lab7.ipynb 8 --out-of 10 --resource-id lab7`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, err := app.Local()
			if err != nil {
				return err
			}
			it, err := g.CreateLineItem(app.Context(), c)
			if err != nil {
				return err
			}
			if cJSON {
				return printJSON(app.Out, it)
			}
			verb := "reused"
			if it.Created {
				verb = "created"
			}
			_, err = fmt.Fprintf(app.Out, "%s column %q (max %s, resource id %s): %s\n", verb, termsafe.Field(it.Label), fmtFloat(it.ScoreMaximum),
				termsafe.Field(it.ResourceID), termsafe.Field(it.ID))
			return err
		},
	}
	cf := create.Flags()
	cf.StringVar(&c.Course, "course", "", "the course (context id, label or title)")
	cf.StringVar(&c.Label, "label", "", "the column's label")
	cf.Float64Var(&c.Max, "max", 0, "the column's maximum score")
	cf.StringVar(&c.ResourceID, "resource-id", "", "the tool's id for the column; the same id reuses the column")
	cf.StringVar(&c.Tag, "tag", "", "optional tag")
	cf.BoolVar(&cJSON, "json", false, "print JSON")
	cmd.AddCommand(readsStore(app, list), readsStore(app, create))
	return cmd
}
