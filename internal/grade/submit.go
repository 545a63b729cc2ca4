package grade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ltigrade/ltigrade/internal/autograde"
	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/owner"
	"github.com/ltigrade/ltigrade/internal/store"
)

// SubmitRequest is a student's notebook for server-side grading: its path
// inside the student's own root and its content. Who submits is not part
// of it: the service takes that from the hub token.
type SubmitRequest struct {
	Path     string `json:"path"`
	Notebook []byte `json:"notebook"` // base64 in JSON
}

// SubmissionView is a submission as the student and the instructor see
// it: with the state of its score's delivery to the LMS.
type SubmissionView struct {
	store.Submission
	// Delivery is the passback's status once graded (sent, queued, retry,
	// rejected, superseded), "" before.
	Delivery string `json:"delivery,omitempty"`
	// State is one word: queued, grading, graded (not delivered yet),
	// delivered, failed.
	State string `json:"state"`
}

// Code is the exit code of `submit --wait`: 0 delivered (or superseded),
// 5 still on its way, 6 refused by the LMS or not gradable.
func (v *SubmissionView) Code() int {
	switch v.State {
	case "delivered":
		return ExitOK
	case "failed":
		return ExitRejected
	case "graded":
		return StatusCode(v.Delivery)
	}
	return ExitQueued
}

// Final says the submission will not change any more.
func (v *SubmissionView) Final() bool {
	switch v.State {
	case "delivered", "failed":
		return true
	case "graded":
		return v.Delivery == store.StatusRejected || v.Delivery == store.StatusSuperseded
	}
	return false
}

// MatchGrader finds the [[graders]] entry for a session and a notebook
// path: every field the entry sets must match (course: context id, label
// or title; assignment: resource link id or title; notebooks: a path
// pattern). -1 when none does.
func MatchGrader(gs []config.Grader, s *store.Session, rel string) int {
	for i, g := range gs {
		if g.Course != "" && !anyFold(g.Course, s.ContextID, s.ContextLabel, s.ContextTitle) {
			continue
		}
		if g.Assignment != "" && !anyFold(g.Assignment, s.ResourceLinkID, s.ResourceLinkTitle) {
			continue
		}
		if g.Notebooks != "" {
			if ok, _ := path.Match(g.Notebooks, rel); !ok {
				continue
			}
		}
		return i
	}
	return -1
}

func anyFold(want string, have ...string) bool {
	for _, h := range have {
		if h != "" && strings.EqualFold(strings.TrimSpace(want), strings.TrimSpace(h)) {
			return true
		}
	}
	return false
}

// Submit journals a student's notebook for grading, after checking that
// one of the student's own launches covers the path (the same rule as a
// score), that the assignment has a grader, and the limits. It returns the
// queued submission; workers (Grading) grade it.
func (g *Local) Submit(ctx context.Context, user string, r SubmitRequest) (*SubmissionView, error) {
	lim := g.Config.Submit
	if g.GradingOff != "" {
		return nil, WithCode(ExitNotAllowed, errors.New("server-side grading is off: "+g.GradingOff), "ask the hub admin")
	}
	if int64(len(r.Notebook)) > lim.MaxBytes {
		return nil, Usagef("the notebook is %d KiB; at most %d KiB are accepted", len(r.Notebook)>>10, lim.MaxBytes>>10)
	}
	var nb struct {
		Cells []json.RawMessage `json:"cells"`
	}
	if err := json.Unmarshal(r.Notebook, &nb); err != nil || nb.Cells == nil {
		return nil, Usagef("%s is not a Jupyter notebook (JSON with cells)", r.Path)
	}
	if user == "" {
		return nil, WithCode(ExitNotAllowed, errors.New("no user to submit for"), "")
	}
	// Only a path inside the student's own root, covered by one of their
	// own launches: the user is the token's, never the request's.
	rel := strings.TrimPrefix(path.Clean("/"+strings.TrimSpace(r.Path)), "/")
	if rel == "" || strings.HasPrefix(r.Path, "/") {
		return nil, Usagef("path %q must be the notebook's path inside your home (notebook root), e.g. course/hw1/hw1.ipynb", r.Path)
	}
	// Only the student's own launches (no roster): submitting is what a
	// launch of the assignment entitles a student to.
	res, err := g.resolveOwn(ctx, ResolveRequest{Notebook: rel, User: user})
	if err != nil {
		return nil, err
	}
	sess := &res.Match.Session
	if sess.Origin == "roster" {
		return nil, WithCode(ExitNoSession, fmt.Errorf("%s belongs to %q, which you never launched: open it from the LMS first", rel, sess.ResourceLinkTitle), "")
	}
	rel = res.Rel
	gi := MatchGrader(g.Config.Graders, sess, rel)
	if gi < 0 {
		return nil, WithCode(ExitNoSession, fmt.Errorf("%s counts for %q, which has no grader on the server", rel, sess.ResourceLinkTitle),
			"your instructor grades it another way; ask them, or add a [[graders]] entry for this course and assignment")
	}
	if err := g.Preflight(sess); err != nil {
		if _, ok := SecretUnavailable(err); !ok {
			return nil, err
		}
	}
	sub := &store.Submission{Username: user, SessionID: sess.ID, LaunchID: sess.LaunchID, Path: rel,
		Assignment: sess.ResourceLinkTitle, Grader: gi, Content: r.Notebook}
	err = g.Store.AddSubmission(ctx, sub, store.SubmissionLimits{Now: g.now(), Interval: lim.Interval, MaxQueued: lim.Queue})
	var soon *store.TooSoonError
	switch {
	case errors.As(err, &soon):
		return nil, WithCode(ExitNotAllowed, fmt.Errorf("you submitted less than %s ago; try again in %s", lim.Interval, soon.Wait.Round(time.Second)), "")
	case errors.Is(err, store.ErrQueueFull):
		return nil, WithCode(ExitQueued, errors.New("the grading queue is full; nothing was submitted"), "try again in a few minutes")
	case err != nil:
		return nil, err
	}
	if g.OnSubmit != nil {
		g.OnSubmit()
	}
	return g.viewOf(ctx, sub)
}

// Submission is one submission with its delivery state.
func (g *Local) Submission(ctx context.Context, id int64) (*SubmissionView, error) {
	s, err := g.Store.Submission(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, WithCode(ExitNoSession, fmt.Errorf("no submission %d", id), "")
		}
		return nil, err
	}
	return g.viewOf(ctx, s)
}

// Submissions lists submissions, newest first.
func (g *Local) Submissions(ctx context.Context, f store.SubmissionFilter) ([]SubmissionView, error) {
	list, err := g.Store.ListSubmissions(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]SubmissionView, 0, len(list))
	for i := range list {
		v, err := g.viewOf(ctx, &list[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}

func (g *Local) viewOf(ctx context.Context, s *store.Submission) (*SubmissionView, error) {
	v := &SubmissionView{Submission: *s, State: s.Status}
	if s.Status == store.SubmissionGraded && s.PassbackID != 0 {
		p, err := g.Store.Passback(ctx, s.PassbackID)
		if err == nil {
			v.Delivery = p.Status
			if p.Status == store.StatusSent {
				v.State = "delivered"
			}
		}
	}
	return v, nil
}

// Grading grades journaled submissions with Workers at once.
type Grading struct {
	G       *Local
	Run     autograde.Runner
	Workers int
	Log     *slog.Logger

	wake chan struct{}
	once sync.Once
}

// Wake tells an idle worker that a submission is waiting.
func (w *Grading) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Grading) init() { w.once.Do(func() { w.wake = make(chan struct{}, 1) }) }

// Run grades until ctx ends. Each worker claims the oldest waiting
// submission of a student who has none grading (submissions a crashed
// service left grading are claimed again), grades it in the sandbox,
// journals the score as a passback of the submission's launch and sends
// it (the outbox delivers it later if the LMS is away).
func (w *Grading) Serve(ctx context.Context) {
	w.init()
	n := max(w.Workers, 1)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := owner.ID()
			for ctx.Err() == nil {
				sub, err := w.G.Store.ClaimSubmission(ctx, me, w.G.now(), owner.Alive)
				if err != nil {
					w.log("claim", "error", err.Error())
				}
				if sub == nil {
					select {
					case <-ctx.Done():
					case <-w.wake:
					case <-time.After(2 * time.Second):
					}
					continue
				}
				// A grading that could not start (the sandbox) goes back to
				// the queue; a second wake lets another worker run on.
				r := w.grade(ctx, sub)
				if err := w.G.Store.FinishSubmission(context.WithoutCancel(ctx), sub.ID, me, r); err != nil {
					w.log("finish", "submission", sub.ID, "error", err.Error())
				}
				if r.Status == store.SubmissionQueued {
					select {
					case <-ctx.Done():
					case <-time.After(5 * time.Second):
					}
				}
			}
		}()
	}
	wg.Wait()
}

func (w *Grading) log(msg string, kv ...any) {
	if w.Log != nil {
		w.Log.Warn("grading: "+msg, kv...)
	}
}

func (w *Grading) grade(ctx context.Context, sub *store.Submission) store.SubmissionResult {
	g := w.G
	res := store.SubmissionResult{Now: g.now()}
	fail := func(reason, output string) store.SubmissionResult {
		res.Status, res.Reason, res.Output = store.SubmissionFailed, reason, output
		res.Now = g.now()
		return res
	}
	if sub.Grader < 0 || sub.Grader >= len(g.Config.Graders) {
		return fail("the grader of this assignment is no longer configured", "")
	}
	gr := g.Config.Graders[sub.Grader]
	if gr.Kind == "nbgrader" && gr.NbgraderAssignment == "" {
		gr.NbgraderAssignment = path.Base(path.Dir(sub.Path))
	}
	out, err := autograde.Grade(ctx, w.Run, autograde.Job{Grader: gr, Limits: g.Config.Submit, Notebook: sub.Content, Name: path.Base(sub.Path)})
	if err != nil {
		if ctx.Err() != nil || sub.Attempts < 3 {
			w.log("sandbox", "submission", sub.ID, "error", err.Error())
			res.Status = store.SubmissionQueued
			return res
		}
		return fail("the grading sandbox could not start: "+err.Error(), "")
	}
	if out.Failed {
		return fail(out.Reason, out.Output)
	}
	score, outOf := out.Score, out.OutOf
	sc, err := g.Score(context.WithoutCancel(ctx), ScoreRequest{Launch: sub.LaunchID, Notebook: sub.Path,
		Score: strconv.FormatFloat(score, 'f', -1, 64), OutOf: outOf})
	if err != nil {
		return fail("the score could not be journaled: "+err.Error(), out.Output)
	}
	res.Status, res.Score, res.OutOf, res.PassbackID, res.Output = store.SubmissionGraded, &score, &outOf, sc.Passback.ID, out.Output
	res.Now = g.now()
	return res
}
