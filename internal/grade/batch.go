package grade

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ltigrade/ltigrade/internal/batch"
	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/score"
	"github.com/ltigrade/ltigrade/internal/store"
)

// BatchRequest is many scores at once (score --batch, nbgrader push, otter
// push, POST api/scores with rows).
type BatchRequest struct {
	Rows        []batch.Row `json:"rows"`
	DryRun      bool        `json:"dry_run,omitempty"`
	Concurrency int         `json:"concurrency,omitempty"` // 0: passback.concurrency
	Cwd         string      `json:"cwd,omitempty"`
}

// BatchResult is one row's result.
type BatchResult struct {
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
	// Via is "roster" for a student who never launched the assignment
	// (LTI 1.3): the row went to its line item for their roster member.
	Via string `json:"via,omitempty"`
}

// BatchSummary counts the rows by outcome.
type BatchSummary struct {
	Rows       int `json:"rows"`
	Sent       int `json:"sent"`
	Queued     int `json:"queued"`
	Rejected   int `json:"rejected"`
	Superseded int `json:"superseded"`
	Unresolved int `json:"unresolved"`
	Ambiguous  int `json:"ambiguous"`
}

// BatchReport is the --json of a batch.
type BatchReport struct {
	Summary  BatchSummary  `json:"summary"`
	Results  []BatchResult `json:"results"`
	DryRun   bool          `json:"dry_run,omitempty"`
	Warnings []Notice      `json:"warnings,omitempty"`
}

// Code is 0 when every row was sent (or superseded), else the most serious
// of 6, 4, 3, 5.
func (r *BatchReport) Code() int {
	code := ExitOK
	for _, res := range r.Results {
		c := ExitOK
		switch res.Status {
		case "queued":
			c = ExitQueued
		case "rejected":
			c = ExitRejected
		case "unresolved":
			c = ExitNoSession
		case "ambiguous":
			c = ExitAmbiguous
		}
		if Severity[c] > Severity[code] {
			code = c
		}
	}
	return code
}

func (r *BatchReport) summarise() {
	r.Summary = BatchSummary{}
	for _, res := range r.Results {
		r.Summary.Rows++
		switch res.Status {
		case "sent":
			r.Summary.Sent++
		case "queued":
			r.Summary.Queued++
		case "rejected":
			r.Summary.Rejected++
		case "superseded":
			r.Summary.Superseded++
		case "unresolved":
			r.Summary.Unresolved++
		case "ambiguous":
			r.Summary.Ambiguous++
		}
	}
}

// Batch resolves every row, journals all sendable ones in one transaction,
// sends them with bounded concurrency and reports. Malformed rows (a bad
// score, a path trick, an LMS ltigrade cannot sign for) refuse the whole
// batch before anything is written. progress, if set, is called as each
// row finishes. An interrupted run (ctx) returns its report with the error.
func (g *Local) Batch(ctx context.Context, r BatchRequest, progress func(status string)) (*BatchReport, error) {
	if r.Concurrency < 0 || r.Concurrency > config.MaxConcurrency {
		return nil, Usagef("--concurrency %d: want 1..%d", r.Concurrency, config.MaxConcurrency)
	}
	if len(r.Rows) > batch.MaxRows {
		return nil, Usagef("more than %d rows", batch.MaxRows)
	}
	rep := &BatchReport{Results: make([]BatchResult, len(r.Rows)), DryRun: r.DryRun}
	results := rep.Results
	var sendable []*store.Passback
	rowOf := map[*store.Passback]int{}
	var problems []string
	seenSecret := map[string]bool{}
	now := g.now()
	// Resolve from one snapshot: the spool recorded once, then every named
	// user's sessions fetched in a few queries, each course's and link's
	// facts read once (a query per row was a quarter of a large batch).
	if g.CatchUp != nil {
		g.CatchUp(ctx)
	}
	cache := resolve.NewCache(g.Store)
	loads := g.newLoadMemo()
	var users []string
	for _, row := range r.Rows {
		if u, err := launch.NormalizeUsername(row.Username); err == nil {
			users = append(users, u)
		}
	}
	if err := cache.Prefetch(ctx, users); err != nil {
		return nil, err
	}
	for i, row := range r.Rows {
		res := &results[i]
		res.Line, res.Username, res.Notebook = row.Line, row.Username, row.Notebook
		sc, err := score.Parse(row.Score, row.OutOf)
		if err != nil {
			msg := err.Error()
			var above *score.AboveOneError
			if errors.As(err, &above) {
				msg = above.Message("out_of") // rows have a column, not a flag
			}
			problems = append(problems, fmt.Sprintf("line %d: invalid score: %s", row.Line, msg))
			continue
		}
		res.Score = sc.Text()
		if len(row.Comment) > MaxComment {
			problems = append(problems, fmt.Sprintf("line %d: comment is longer than %d KiB", row.Line, MaxComment>>10))
			continue
		}
		sess, resolved, err := g.target(ctx, ResolveRequest{Notebook: row.Notebook, User: row.Username, Cwd: r.Cwd}, 0, cache)
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
			problems = append(problems, fmt.Sprintf("line %d: %v", row.Line, err))
			continue
		case err != nil:
			return nil, err
		}
		res.Username, res.SessionID = sess.Username, sess.ID
		if resolved != nil && resolved.Via != "" {
			res.Via = resolved.Via
		}
		if err := g.preflight(sess, loads.secret, loads.platform); err != nil {
			code, _ := ExitCode(err)
			su, later := SecretUnavailable(err)
			switch {
			case later:
				// Journaled and queued like a score the LMS could not take
				// now; one warning per cause.
				if !seenSecret[su.Error()] {
					seenSecret[su.Error()] = true
					rep.Warnings = append(rep.Warnings, secretNotice(su))
				}
			case code == ExitNoSession:
				res.Status, res.Message = "unresolved", err.Error()
				continue
			default:
				problems = append(problems, fmt.Sprintf("line %d: %v", row.Line, err))
				continue
			}
		}
		p, warns := BuildPassback(sess, sc, row.OutOf, row.Comment, row.Notebook, now)
		res.Given, res.Maximum = p.ScoreGiven, p.ScoreMax
		if res.Via == "roster" {
			warns = append([]string{"resolved via roster"}, warns...)
		}
		if len(warns) > 0 {
			res.Message = strings.Join(warns, "; ")
		}
		sendable = append(sendable, p)
		rowOf[p] = i
	}
	if len(problems) > 0 {
		msg := strings.Join(problems[:min(len(problems), 10)], "\n  ")
		if len(problems) > 10 {
			msg += fmt.Sprintf("\n  ... and %d more", len(problems)-10)
		}
		return nil, Usagef("batch refused, nothing journaled or sent (%d bad row%s):\n  %s", len(problems), plural(len(problems)), msg)
	}
	if r.DryRun {
		for _, p := range sendable {
			res := &results[rowOf[p]]
			res.Status = "dry-run"
			if res.Message == "" {
				res.Message = "would send to " + firstNonEmpty(p.TargetURL, p.LineItems)
			}
		}
		rep.summarise()
		return rep, nil
	}
	if len(sendable) > 0 {
		if err := g.Store.Enqueue(ctx, sendable); err != nil {
			return nil, err
		}
	}
	for _, p := range sendable {
		results[rowOf[p]].Passback = p.ID
	}
	conc := r.Concurrency
	if conc <= 0 {
		conc = g.Config.Passback.Concurrency
	}
	eng := g.engine(conc, g.senderWith(conc, loads.secret, loads.platform))
	var mu sync.Mutex
	err := eng.SendBatch(ctx, sendable, min(g.Config.Passback.Timeout, 5*time.Second), func(p *store.Passback, out passback.Outcome) {
		mu.Lock()
		defer mu.Unlock()
		res := &results[rowOf[p]]
		switch out.Status {
		case store.StatusSent:
			res.Status = "sent"
		case store.StatusRejected:
			res.Status = "rejected"
		case store.StatusSuperseded:
			res.Status = "superseded"
		default:
			res.Status = "queued"
		}
		if out.Message != "" {
			res.Message = out.Message
			if res.Via == "roster" {
				res.Message = "resolved via roster; " + out.Message
			}
		}
		if progress != nil {
			progress(res.Status)
		}
	})
	// Rows not finished (interrupted): still journaled, so queued.
	for _, p := range sendable {
		if res := &results[rowOf[p]]; res.Status == "" {
			res.Status, res.Message = "queued", "not sent before the run ended; ltigrade sync will"
		}
	}
	rep.summarise()
	return rep, err
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

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
