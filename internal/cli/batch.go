package cli

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/batch"
	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/termsafe"
)

// batchOptions are the flags shared by score --batch, nbgrader push and
// otter push.
type batchOptions struct {
	DryRun      bool
	JSON        bool
	Concurrency int    // 0: passback.concurrency
	Label       string // what the rows are, for the summary ("nbgrader ps1")
}

// runBatch sends rows through the grader (grade.Local.Batch: resolve all,
// journal in one transaction, send with bounded concurrency) and reports.
func runBatch(app *App, rows []batch.Row, o batchOptions) error {
	app.manyQueries = true
	g, err := app.Grader()
	if err != nil {
		return err
	}
	batchGC(len(rows))
	prog := newProgress(app, len(rows))
	rep, err := g.Batch(app.Context(), grade.BatchRequest{Rows: rows, DryRun: o.DryRun, Concurrency: o.Concurrency, Cwd: app.cwd()}, prog.step)
	prog.done()
	if rep == nil {
		return err
	}
	app.printNotices(rep.Warnings)
	if rerr := reportBatch(app, rep, o); rerr != nil {
		return rerr
	}
	if err != nil {
		return err
	}
	return exitWith(rep.Code())
}

// batchGC lets a large batch's short-lived process collect garbage less
// often: a 20,000-row batch made some 60 collections of a 20-40 MB heap,
// 8% of its CPU. With GOGC 400 it makes a fifth as many; the soft memory
// limit still bounds the heap. GOGC or GOMEMLIMIT in the environment win.
func batchGC(rows int) {
	if rows < 1000 || os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(400)
	debug.SetMemoryLimit(1 << 30)
}

func reportBatch(app *App, rep *grade.BatchReport, o batchOptions) error {
	sum := rep.Summary
	if o.JSON {
		return printJSON(app.Out, rep)
	}
	var rows [][]string
	for _, r := range rep.Results {
		// Pipes get every row; a terminal only the rows that need a look.
		if app.OutIsTTY && !o.DryRun && r.Status == "sent" {
			continue
		}
		rows = append(rows, []string{strconv.Itoa(r.Line), dash(r.Username), r.Notebook, dash(r.Score), r.Status, dash(r.Message)})
	}
	if err := app.printTable([]string{"LINE", "USER", "NOTEBOOK", "SCORE", "STATUS", "MESSAGE"}, rows); err != nil {
		return err
	}
	label := o.Label
	if label == "" {
		label = "batch"
	}
	if o.DryRun {
		fmt.Fprintf(app.Err, "%s: dry run, %d row%s, %d would be sent, %d unresolved, %d ambiguous; nothing journaled or sent\n",
			termsafe.Field(label), sum.Rows, plural(sum.Rows, "s"), sum.Rows-sum.Unresolved-sum.Ambiguous, sum.Unresolved, sum.Ambiguous)
	} else {
		fmt.Fprintf(app.Err, "%s: %d row%s: %d sent, %d queued, %d rejected, %d superseded, %d unresolved, %d ambiguous\n",
			termsafe.Field(label), sum.Rows, plural(sum.Rows, "s"), sum.Sent, sum.Queued, sum.Rejected, sum.Superseded, sum.Unresolved, sum.Ambiguous)
	}
	return nil
}

// progress draws a one-line bar on stderr when it is a terminal.
type progress struct {
	app      *App
	total, n int
	on       bool
	counts   map[string]int
	lastDraw time.Time
}

func newProgress(app *App, total int) *progress {
	return &progress{app: app, total: total, counts: map[string]int{},
		on: app.ErrIsTTY && total > 1}
}

func (p *progress) step(status string) {
	p.n++
	p.counts[status]++
	if !p.on || time.Since(p.lastDraw) < 100*time.Millisecond && p.n < p.total {
		return
	}
	p.lastDraw = time.Now()
	const width = 30
	fill := width * p.n / max(p.total, 1)
	fmt.Fprintf(p.app.Err, "\r[%s%s] %d/%d sent %d queued %d rejected %d ",
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), p.n, p.total,
		p.counts["sent"], p.counts["queued"], p.counts["rejected"])
}

func (p *progress) done() {
	if p.on && p.n > 0 {
		fmt.Fprintln(p.app.Err)
	}
}
