package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/ltigrade/ltigrade/internal/termsafe"
)

// printJSON writes v as indented JSON: the --json contract.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printTable writes rows as an aligned table on a terminal, or as
// header-less tab-separated lines in a pipe (one record per line, tabs and
// newlines inside cells replaced so `cut` and `awk` keep working).
func (a *App) printTable(header []string, rows [][]string) error {
	// Cells may hold LMS-provided text: one line each, no terminal
	// escapes, no tabs to shift TSV columns.
	safe := make([][]string, len(rows))
	for j, r := range rows {
		safe[j] = make([]string, len(r))
		for i, c := range r {
			safe[j][i] = termsafe.Field(c)
		}
	}
	rows = safe
	if !a.OutIsTTY {
		for _, cells := range rows {
			if _, err := fmt.Fprintln(a.Out, strings.Join(cells, "\t")); err != nil {
				return err
			}
		}
		return nil
	}
	if len(rows) == 0 {
		return nil
	}
	t := tablewriter.NewTable(a.Out,
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRendition(tw.Rendition{Borders: tw.BorderNone,
			Settings: tw.Settings{Separators: tw.Separators{BetweenColumns: tw.Off, BetweenRows: tw.Off},
				Lines: tw.Lines{ShowHeaderLine: tw.Off}}}),
	)
	t.Header(header)
	for _, r := range rows {
		if err := t.Append(r); err != nil {
			return err
		}
	}
	return t.Render()
}

// fmtTime is RFC 3339 in pipes, a shorter local form on a terminal.
func (a *App) fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	if a.OutIsTTY {
		return t.Local().Format("2006-01-02 15:04")
	}
	return t.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
