package grade

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/store"
)

// ResultRequest asks the LMS which grade it holds for a notebook's launch
// (Op lti11.ReadResult) or deletes it (lti11.DeleteResult, LTI 1.1 only).
type ResultRequest struct {
	Notebook string   `json:"notebook"`
	User     string   `json:"user,omitempty"`
	Cwd      string   `json:"cwd,omitempty"`
	Launch   int64    `json:"launch,omitempty"`
	Op       lti11.Op `json:"operation"`
}

// ResultOut is the --json of `result read|delete`, the same for LTI 1.1
// and 1.3.
type ResultOut struct {
	SessionID int64  `json:"session_id"`
	LaunchID  int64  `json:"launch_id"`
	Username  string `json:"username"`
	Operation string `json:"operation"`
	Status    string `json:"status"` // success, rejected, retry, error
	// Score is the grade as a fraction in [0,1], when the LMS holds one.
	Score    string `json:"score,omitempty"`
	HasScore bool   `json:"has_score"`
	// ResultScore and ResultMaximum: LTI 1.3 only, the points as the
	// platform holds them.
	ResultScore   *float64 `json:"result_score,omitempty"`
	ResultMaximum *float64 `json:"result_maximum,omitempty"`
	Message       string   `json:"message,omitempty"`
}

// Code is the exit code of a result operation.
func (r *ResultOut) Code() int {
	switch r.Status {
	case "success":
		return ExitOK
	case "rejected":
		return ExitRejected
	case "retry":
		return ExitQueued
	}
	return ExitError
}

// Result reads or deletes the grade the LMS holds for a notebook's launch.
// Nothing is journaled: it is a question, asked once.
func (g *Local) Result(ctx context.Context, r ResultRequest) (*ResultOut, error) {
	sess, _, err := g.Target(ctx, ResolveRequest{Notebook: r.Notebook, User: r.User, Cwd: r.Cwd}, r.Launch)
	if err != nil {
		return nil, err
	}
	if err := g.Preflight(sess); err != nil {
		return nil, err
	}
	out := &ResultOut{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username, Operation: string(r.Op)}
	if sess.Version == "1.3" {
		return g.agsResult(ctx, sess, r.Op, out)
	}
	secret, err := g.Config.ConsumerSecret(sess.Platform)
	if err != nil {
		return nil, consumerErr(err)
	}
	c := &lti11.Client{HTTP: &http.Client{Timeout: g.Config.Passback.Timeout}}
	o := c.Do(ctx, sess.OutcomeURL, sess.Platform, secret.Reveal(), lti11.ResultRequest{Op: r.Op, SourcedID: sess.SourcedID})
	out.Message = o.Message
	switch o.Status {
	case lti11.Sent:
		out.Status = "success"
		if o.Response != nil {
			out.Score, out.HasScore = o.Response.Score, o.Response.HasScore
		}
	case lti11.Rejected:
		out.Status = "rejected"
	default:
		out.Status = "retry"
	}
	return out, nil
}

// agsResult reads (GET {lineitem}/results?user_id=) the grade an LTI 1.3
// platform holds. AGS has no delete.
func (g *Local) agsResult(ctx context.Context, sess *store.Session, op lti11.Op, out *ResultOut) (*ResultOut, error) {
	if op != lti11.ReadResult {
		return nil, Usagef("LTI 1.3 Assignment and Grade Services cannot delete a result; send a new score instead")
	}
	plat, err := g.Platform(sess.Platform, sess.ClientID)
	if err != nil {
		return nil, WithCode(ExitUsage, err, "")
	}
	c := g.AGSClient(1)
	fail := func(err error) (*ResultOut, error) {
		var ae *ags.Error
		var le *ags.LineItemError
		out.Status, out.Message = "error", err.Error()
		switch {
		case errors.As(err, &le):
			out.Status = "rejected"
		case errors.As(err, &ae) && ae.Status == ags.Rejected:
			out.Status = "rejected"
		case errors.As(err, &ae):
			out.Status = "retry"
		}
		return out, nil
	}
	lineitem := sess.LineItem
	if lineitem == "" {
		if lineitem, err = c.FindLineItem(ctx, plat, sess.LineItems, sess.ResourceLinkID); err != nil {
			return fail(err)
		}
	}
	results, err := c.Results(ctx, plat, lineitem, sess.LTIUserID)
	if err != nil {
		return fail(err)
	}
	out.Status = "success"
	for _, r := range results {
		if r.UserID == sess.LTIUserID && r.ResultScore != nil {
			out.HasScore, out.ResultScore, out.ResultMaximum = true, r.ResultScore, r.ResultMaximum
			frac := *r.ResultScore
			if r.ResultMaximum != nil && *r.ResultMaximum > 0 {
				frac = *r.ResultScore / *r.ResultMaximum
			}
			out.Score = strconv.FormatFloat(frac, 'f', -1, 64)
		}
	}
	return out, nil
}
