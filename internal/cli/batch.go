package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ltigrade/ltigrade/internal/batch"
	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/score"
	"github.com/ltigrade/ltigrade/internal/store"
)

// batchOptions are the flags shared by score --batch, nbgrader push and
// otter push.
type batchOptions struct {
	DryRun      bool
	JSON        bool
	Concurrency int    // 0: passback.concurrency
	Label       string // what the rows are, for the summary ("nbgrader ps1")
}

// batchResult is one row's --json result.
type batchResult struct {
	Line      int     `json:"line"`
	Username  string  `json:"username"`
	Notebook  string  `json:"notebook"`
	Score     string  `json:"score,omitempty"`
	Status    string  `json:"status"` // sent, queued, rejected, superseded, unresolved, ambiguous, dry-run
	Message   string  `json:"message,omitempty"`
	SessionID int64   `json:"session_id,omitempty"`
	Passback  int64   `json:"passback_id,omitempty"`
	Given     float64 `json:"score_given,omitempty"`
	Maximum   float64 `json:"score_maximum,omitempty"`
}

type batchSummary struct {
	Rows       int `json:"rows"`
	Sent       int `json:"sent"`
	Queued     int `json:"queued"`
	Rejected   int `json:"rejected"`
	Superseded int `json:"superseded"`
	Unresolved int `json:"unresolved"`
	Ambiguous  int `json:"ambiguous"`
}

// severity orders the exit codes of a batch: the most serious wins.
var severity = map[int]int{ExitOK: 0, ExitQueued: 1, ExitNoSession: 2, ExitAmbiguous: 3, ExitRejected: 4}

// runBatch resolves every row, journals all sendable ones in one
// transaction, sends them with bounded concurrency and reports. Malformed
// rows (a bad score, a path trick, an LMS ltigrade cannot sign for) refuse
// the whole batch before anything is written.
func runBatch(app *App, rows []batch.Row, o batchOptions) error {
	cfg, err := app.Config()
	if err != nil {
		return err
	}
	if o.Concurrency < 0 || o.Concurrency > config.MaxConcurrency {
		return usageErr("--concurrency %d: want 1..%d", o.Concurrency, config.MaxConcurrency)
	}
	results := make([]batchResult, len(rows))
	var sendable []*store.Passback
	rowOf := map[*store.Passback]int{}
	var problems []string
	var unavailable []*config.SecretUnavailableError
	seenSecret := map[string]bool{}
	now := app.Now()
	for i, r := range rows {
		res := &results[i]
		res.Line, res.Username, res.Notebook = r.Line, r.Username, r.Notebook
		sc, err := score.Parse(r.Score, r.OutOf)
		if err != nil {
			msg := err.Error()
			var above *score.AboveOneError
			if errors.As(err, &above) {
				msg = above.Message("out_of") // rows have a column, not a flag
			}
			problems = append(problems, fmt.Sprintf("line %d: invalid score: %s", r.Line, msg))
			continue
		}
		res.Score = sc.Text()
		sess, _, err := target(app, r.Notebook, r.Username, 0)
		var nf *resolve.NotFoundError
		var amb *resolve.AmbiguousError
		var in *resolve.InputError
		switch {
		case errors.As(err, &nf):
			res.Status, res.Message = "unresolved", nf.Error()
			continue
		case errors.As(err, &amb):
			res.Status, res.Message = "ambiguous", firstLine(amb.Error())
			continue
		case errors.As(err, &in):
			problems = append(problems, fmt.Sprintf("line %d: %v", r.Line, err))
			continue
		case err != nil:
			return err
		}
		res.Username, res.SessionID = sess.Username, sess.ID
		if err := outcomeTarget(app, sess); err != nil {
			code, _ := exitCode(err)
			su, later := secretUnavailable(err)
			switch {
			case later:
				// Journaled and queued like a score the LMS could not take
				// now; one warning per cause.
				if !seenSecret[su.Error()] {
					seenSecret[su.Error()] = true
					unavailable = append(unavailable, su)
				}
			case code == ExitNoSession:
				res.Status, res.Message = "unresolved", err.Error()
				continue
			default:
				problems = append(problems, fmt.Sprintf("line %d: %v", r.Line, err))
				continue
			}
		}
		p, warn := buildPassback(sess, sc, r.OutOf, r.Comment, r.Notebook, now)
		res.Given, res.Maximum = p.ScoreGiven, p.ScoreMax
		if warn != "" {
			res.Message = warn
		}
		sendable = append(sendable, p)
		rowOf[p] = i
	}
	if len(problems) > 0 {
		msg := strings.Join(problems[:min(len(problems), 10)], "\n  ")
		if len(problems) > 10 {
			msg += fmt.Sprintf("\n  ... and %d more", len(problems)-10)
		}
		return usageErr("batch refused, nothing journaled or sent (%d bad row%s):\n  %s", len(problems), plural(len(problems), "s"), msg)
	}
	for _, su := range unavailable {
		warnSecretUnavailable(app, su)
	}
	if o.DryRun {
		for _, p := range sendable {
			r := &results[rowOf[p]]
			r.Status = "dry-run"
			if r.Message == "" {
				r.Message = "would send to " + firstNonEmpty(p.TargetURL, p.LineItems)
			}
		}
		return reportBatch(app, results, o, nil)
	}
	st, err := app.Store()
	if err != nil {
		return err
	}
	if len(sendable) > 0 {
		if err := st.Enqueue(app.Context(), sendable); err != nil {
			return err
		}
	}
	for _, p := range sendable {
		results[rowOf[p]].Passback = p.ID
	}
	conc := o.Concurrency
	if conc <= 0 {
		conc = cfg.Passback.Concurrency
	}
	// One kept-alive connection per sender actually used.
	app.idleConns = conc
	sender, err := app.sender()
	if err != nil {
		return err
	}
	eng := &passback.Engine{Store: st, Timeout: cfg.Passback.Timeout, Concurrency: conc, Now: app.Now, Sender: sender}
	prog := newProgress(app, len(sendable))
	var mu sync.Mutex
	err = eng.SendBatch(app.Context(), sendable, min(cfg.Passback.Timeout, 5*time.Second), func(p *store.Passback, out passback.Outcome) {
		mu.Lock()
		defer mu.Unlock()
		r := &results[rowOf[p]]
		switch out.Status {
		case store.StatusSent:
			r.Status = "sent"
		case store.StatusRejected:
			r.Status = "rejected"
		case store.StatusSuperseded:
			r.Status = "superseded"
		default:
			r.Status = "queued"
		}
		if out.Message != "" {
			r.Message = out.Message
		}
		prog.step(r.Status)
	})
	prog.done()
	// Rows not finished (interrupted): still journaled, so queued.
	for _, p := range sendable {
		if r := &results[rowOf[p]]; r.Status == "" {
			r.Status, r.Message = "queued", "not sent before the run ended; ltigrade sync will"
		}
	}
	if rerr := reportBatch(app, results, o, err); rerr != nil {
		return rerr
	}
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}

func reportBatch(app *App, results []batchResult, o batchOptions, runErr error) error {
	var sum batchSummary
	code := ExitOK
	worse := func(c int) {
		if severity[c] > severity[code] {
			code = c
		}
	}
	for _, r := range results {
		sum.Rows++
		switch r.Status {
		case "sent":
			sum.Sent++
		case "queued":
			sum.Queued++
			worse(ExitQueued)
		case "rejected":
			sum.Rejected++
			worse(ExitRejected)
		case "superseded":
			sum.Superseded++
		case "unresolved":
			sum.Unresolved++
			worse(ExitNoSession)
		case "ambiguous":
			sum.Ambiguous++
			worse(ExitAmbiguous)
		}
	}
	if o.JSON {
		if err := printJSON(app.Out, struct {
			Summary batchSummary  `json:"summary"`
			Results []batchResult `json:"results"`
			DryRun  bool          `json:"dry_run,omitempty"`
		}{sum, results, o.DryRun}); err != nil {
			return err
		}
	} else {
		var rows [][]string
		for _, r := range results {
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
				label, sum.Rows, plural(sum.Rows, "s"), sum.Rows-sum.Unresolved-sum.Ambiguous, sum.Unresolved, sum.Ambiguous)
		} else {
			fmt.Fprintf(app.Err, "%s: %d row%s: %d sent, %d queued, %d rejected, %d superseded, %d unresolved, %d ambiguous\n",
				label, sum.Rows, plural(sum.Rows, "s"), sum.Sent, sum.Queued, sum.Rejected, sum.Superseded, sum.Unresolved, sum.Ambiguous)
		}
	}
	if runErr != nil {
		return runErr
	}
	if code != ExitOK {
		return &silentExit{code: code}
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
