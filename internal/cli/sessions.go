package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/store"
	"github.com/ltigrade/ltigrade/internal/termsafe"
)

// sessionOut is the --json shape of a session or launch; its field names
// are a public contract (docs/json.md).
type sessionOut struct {
	store.Session
	// Covers is what the session covers (sessions show only).
	*resolve.Cover
	AuthState json.RawMessage `json:"auth_state,omitempty"`
}

func sessionJSON(s *store.Session) sessionOut { return sessionOut{Session: *s} }

func newSessionsCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List, show and prune recorded LTI sessions",
		Long: `A session is the newest launch of one (consumer or issuer, LTI user, resource link):
where a score for that student and LMS assignment goes. Every launch is kept too
(see --all).`,
	}
	cmd.AddCommand(readsStore(app, newSessionsListCmd(app)), readsStore(app, newSessionsShowCmd(app)), newSessionsPruneCmd(app))
	return cmd
}

// parseSince accepts a duration back from now ("7d", "36h") or a date or
// RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := parseAge(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr("invalid time %q: use a duration like 7d or 12h, or a date like 2026-09-01", s)
}

// parseAge is time.ParseDuration plus a "d" (day) unit.
func parseAge(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || math.IsNaN(days) || days < 0 || days > 100000 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}

func newSessionsListCmd(app *App) *cobra.Command {
	var f store.SessionFilter
	var since string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List current sessions (or every launch with --all)",
		Example: `  ltigrade sessions list
  ltigrade sessions list --user alice --json
  ltigrade sessions list --course DS100 --since 7d
  ltigrade sessions list --all | cut -f2,4`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since != "" {
				t, err := parseSince(since, app.Now())
				if err != nil {
					return err
				}
				f.Since = t
			}
			g, err := app.Grader()
			if err != nil {
				return err
			}
			list, err := g.Sessions(app.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]sessionOut, 0, len(list))
				for i := range list {
					out = append(out, sessionJSON(&list[i]))
				}
				return printJSON(app.Out, out)
			}
			header := []string{"ID", "USER", "COURSE", "ASSIGNMENT", "CHECKOUT", "NOTEBOOK", "LTI", "LAUNCHED"}
			if f.All {
				header[0] = "LAUNCH"
			}
			var rows [][]string
			for _, s := range list {
				id := s.ID
				if f.All {
					id = s.LaunchID
				}
				course := s.ContextLabel
				if course == "" {
					course = s.ContextTitle
				}
				rows = append(rows, []string{strconv.FormatInt(id, 10), s.Username, dash(course),
					dash(s.Assignment()), dash(s.Checkout), dash(s.Opened), s.Version, app.fmtTime(s.LaunchedAt)})
			}
			if len(rows) == 0 && app.OutIsTTY {
				fmt.Fprintln(app.Err, "no sessions recorded yet")
			}
			return app.printTable(header, rows)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Username, "user", "", "only this JupyterHub user")
	fl.StringVar(&f.Course, "course", "", "only this course (context id, label or title)")
	fl.StringVar(&since, "since", "", "only launches since a duration ago (7d, 12h) or a date (2026-09-01)")
	fl.BoolVar(&f.All, "all", false, "every launch instead of the current session of each assignment")
	fl.IntVar(&f.Limit, "limit", 0, "at most this many rows (0: all)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func parseID(s, what string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErr("invalid %s id %q: want a positive number", what, s)
	}
	return id, nil
}

func newSessionsShowCmd(app *App) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show ID",
		Short:   "Show one session with its current launch and LTI parameters",
		Example: "  ltigrade sessions show 12\n  ltigrade sessions show 12 --json | jq .auth_state",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id, err := parseID(a[0], "session")
			if err != nil {
				return err
			}
			st, err := app.Store()
			if err != nil {
				return err
			}
			s, err := st.Session(app.Context(), id)
			if err != nil {
				return withCode(ExitNoSession, fmt.Errorf("no session %d", id), "list sessions with: ltigrade sessions list")
			}
			course, err := st.CourseNotebooks(app.Context(), s.Platform, s.ContextID)
			if err != nil {
				return err
			}
			if s.ResourceLinkTitle == "" && s.LineItem != "" {
				if labels, err := st.LineItemLabels(app.Context(), []string{s.LineItem}); err == nil {
					s.LineItemLabel = labels[s.LineItem]
				}
			}
			cover := resolve.Coverage(*s, course)
			out := sessionJSON(s)
			out.Cover = &cover
			out.AuthState = json.RawMessage(s.AuthState)
			if asJSON {
				return printJSON(app.Out, out)
			}
			covers := cover.Kind
			if cover.Path != "" {
				covers = cover.Path + " (" + cover.Kind + ")"
			}
			covers += ": " + cover.Why
			link := ""
			switch {
			case s.NextURL == "":
			case s.NextSigned:
				link = "signed by the LMS"
			default:
				link = "UNVERIFIED: from the browser's unsigned login request; counts only where other users' launches of this assignment opened the same path"
			}
			kv := [][2]string{
				{"session", strconv.FormatInt(s.ID, 10)}, {"launch", strconv.FormatInt(s.LaunchID, 10)},
				{"launches", strconv.Itoa(s.LaunchCount)}, {"user", s.Username}, {"lti version", s.Version},
				{"platform", s.Platform}, {"lti user id", s.LTIUserID},
				{"course", strings.TrimSpace(s.ContextLabel + " " + s.ContextTitle + " (" + s.ContextID + ")")},
				{"assignment", assignmentLine(s)}, {"roles", s.Roles},
				{"outcome url", s.OutcomeURL}, {"sourcedid", s.SourcedID}, {"lineitem", s.LineItem},
				{"repo", s.Repo}, {"checkout", s.Checkout}, {"opened", s.Opened}, {"covers", covers},
				{"next url", s.NextURL}, {"link", link}, {"pull error", s.PullError},
				{"ignored", ignoredNext(s.UnsignedNext)},
				{"launched at", app.fmtTime(s.LaunchedAt)}, {"recorded at", app.fmtTime(s.RecordedAt)},
			}
			for _, p := range kv {
				if p[1] == "" {
					continue
				}
				if _, err := fmt.Fprintf(app.Out, "%-12s %s\n", p[0]+":", termsafe.Field(p[1])); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, including the raw auth_state")
	return cmd
}

func ignoredNext(unsigned string) string {
	if unsigned == "" {
		return ""
	}
	return "the login's unsigned next " + unsigned + " disagreed with the signed link and was ignored (a replayed or edited login?)"
}

func newSessionsPruneCmd(app *App) *cobra.Command {
	var older string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "prune --older-than AGE",
		Short: "Delete sessions and launches older than AGE",
		Long: `Delete launches older than AGE, and sessions whose newest launch is older than AGE.
Sessions that still owe the LMS a score (queued passbacks) are kept.`,
		Example: "  ltigrade sessions prune --older-than 180d",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if older == "" {
				return usageErr("--older-than is required (for example --older-than 180d)")
			}
			d, err := parseAge(older)
			if err != nil {
				return usageErr("%v: use a duration like 180d or 720h", err)
			}
			st, err := app.Store()
			if err != nil {
				return err
			}
			stats, err := st.Prune(app.Context(), app.Now().Add(-d))
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Out, stats)
			}
			_, err = fmt.Fprintf(app.Out, "pruned %d session%s, %d launch%s, %d passback%s\n", stats.Sessions, plural(int(stats.Sessions), "s"),
				stats.Launches, plural(int(stats.Launches), "es"), stats.Passbacks, plural(int(stats.Passbacks), "s"))
			return err
		},
	}
	cmd.Flags().StringVar(&older, "older-than", "", "age such as 180d or 4320h (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// assignmentLine is the assignment's title and resource link id; a line
// item label stands in for a missing title, and says so.
func assignmentLine(s *store.Session) string {
	name := s.ResourceLinkTitle
	if name == "" && s.LineItemLabel != "" {
		name = s.LineItemLabel + " [line item label]"
	}
	return strings.TrimSpace(name + " (" + s.ResourceLinkID + ")")
}
