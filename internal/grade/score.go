package grade

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/score"
	"github.com/ltigrade/ltigrade/internal/store"
)

// MaxComment bounds a comment for the student.
const MaxComment = 64 << 10

// ScoreRequest is one score for one notebook (the fields of `ltigrade
// score` and of the service's POST api/scores).
type ScoreRequest struct {
	Notebook string  `json:"notebook"`
	User     string  `json:"user,omitempty"`
	Cwd      string  `json:"cwd,omitempty"`
	Launch   int64   `json:"launch,omitempty"` // send to this launch instead of resolving
	Score    string  `json:"score"`            // 0.85, 85%, 17/20, or points with OutOf
	OutOf    float64 `json:"out_of,omitempty"`
	Comment  string  `json:"comment,omitempty"`
	DryRun   bool    `json:"dry_run,omitempty"`
	// LineItem or ResourceID send to a gradebook column instead of the
	// notebook's assignment (LTI 1.3), for the student's roster member;
	// Course picks the course when the student's launches do not.
	LineItem   string `json:"lineitem,omitempty"`
	ResourceID string `json:"resource_id,omitempty"`
	Course     string `json:"course,omitempty"`
}

// Notice is a warning for the person scoring, with the fix if known.
type Notice struct {
	Warning string `json:"warning"`
	Hint    string `json:"hint,omitempty"`
}

// ScoreResult is what became of a score: the --json of `ltigrade score`.
type ScoreResult struct {
	Passback *store.Passback `json:"passback"`
	Resolved *resolve.Result `json:"resolved,omitempty"`
	DryRun   bool            `json:"dry_run,omitempty"`
	Request  *DryRequest     `json:"request,omitempty"`
	Warnings []Notice        `json:"warnings,omitempty"`
}

// Code is the score's exit code: 0 delivered (or superseded by a newer
// score), 5 queued, 6 rejected.
func (r *ScoreResult) Code() int {
	if r.DryRun {
		return ExitOK
	}
	return StatusCode(r.Passback.Status)
}

// DryRequest is what a score would send.
type DryRequest struct {
	URL         string `json:"url"`
	ConsumerKey string `json:"consumer_key"`
	SourcedID   string `json:"sourcedid"`
	Score       string `json:"score"`
	ResultData  string `json:"result_data,omitempty"`
	SubmittedAt string `json:"submitted_at,omitempty"`
	Body        string `json:"body"`
}

// ParseScore reads a score as the CLI and the service accept it.
func ParseScore(s string, outOf float64) (score.Score, error) {
	sc, err := score.Parse(s, outOf)
	if err != nil {
		return sc, Usagef("invalid score: %v", err)
	}
	return sc, nil
}

// Score resolves, checks, journals (before any network I/O) and sends one
// score, or with DryRun previews it and stores nothing.
func (g *Local) Score(ctx context.Context, r ScoreRequest) (*ScoreResult, error) {
	sc, err := ParseScore(r.Score, r.OutOf)
	if err != nil {
		return nil, err
	}
	if len(r.Comment) > MaxComment {
		return nil, Usagef("comment is longer than %d KiB", MaxComment>>10)
	}
	var sess *store.Session
	var res *resolve.Result
	if r.LineItem != "" || r.ResourceID != "" {
		if r.Launch != 0 {
			return nil, Usagef("--launch and --lineitem/--resource-id name two targets; pass one")
		}
		sess, err = g.lineItemTarget(ctx, r)
	} else {
		sess, res, err = g.Target(ctx, ResolveRequest{Notebook: r.Notebook, User: r.User, Cwd: r.Cwd}, r.Launch)
	}
	if err != nil {
		return nil, err
	}
	out := &ScoreResult{Resolved: res}
	// A secret that cannot be loaded now does not lose the score: it is
	// journaled, stays queued (exit 5) and sync sends it after the fix.
	if err := g.Preflight(sess); err != nil {
		su, ok := SecretUnavailable(err)
		if !ok {
			return nil, err
		}
		out.Warnings = append(out.Warnings, secretNotice(su))
	}
	p, warns := BuildPassback(sess, sc, r.OutOf, r.Comment, r.Notebook, g.now())
	for _, w := range warns {
		out.Warnings = append(out.Warnings, Notice{Warning: w})
	}
	if r.DryRun {
		out.Passback, out.DryRun = p, true
		p.Status = "dry-run"
		if out.Request, err = g.Preview(p); err != nil {
			return nil, err
		}
		return out, nil
	}
	if err := g.Store.Enqueue(ctx, []*store.Passback{p}); err != nil {
		return nil, err
	}
	wait := min(g.Config.Passback.Timeout, 5*time.Second)
	got, err := g.engine(1, g.Sender(1)).SendNow(ctx, []int64{p.ID}, wait)
	if err != nil {
		err = fmt.Errorf("score %s journaled as passback %d, but sending failed: %w", p.Score, p.ID, err)
		// The budget ran out before the row could even be claimed (a busy
		// database, other senders holding the session): the score is
		// journaled and queued, which is exactly what exit 5 says.
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, WithCode(ExitQueued, err, "it stays queued; `ltigrade sync` delivers it")
		}
		return nil, err
	}
	out.Passback = &got[0]
	return out, nil
}

// secretNotice tells why journaled scores cannot be sent yet and how to
// fix it.
func secretNotice(su *config.SecretUnavailableError) Notice {
	n := Notice{Warning: su.Error() + "; scores for it stay queued until that is fixed"}
	if su.Hint != "" {
		n.Hint = su.Hint + ", then run `ltigrade sync`"
	}
	return n
}

// BuildPassback turns a score for a session into its outbox row; the
// warnings say what of the request the LMS cannot take.
func BuildPassback(sess *store.Session, sc score.Score, outOf float64, comment, notebook string, now time.Time) (p *store.Passback, warns []string) {
	p = &store.Passback{SessionID: sess.ID, LaunchID: sess.LaunchID, Username: sess.Username,
		Notebook: notebook, Score: sc.Text(), ScoreGiven: sc.Given, ScoreMax: sc.Maximum,
		Comment: comment, Protocol: "lti11", TargetURL: sess.OutcomeURL, SourcedID: sess.SourcedID,
		ConsumerKey: sess.Platform, CreatedAt: now}
	if sess.Version == "1.3" {
		// AGS: userId is the launch's sub; scoreMaximum is --out-of when
		// given, else 1; the comment always goes.
		p.Protocol, p.TargetURL, p.SourcedID = "ags", sess.LineItem, sess.LTIUserID
		p.ClientID, p.LineItems, p.ResourceLinkID = sess.ClientID, sess.LineItems, sess.ResourceLinkID
		if outOf <= 0 {
			p.ScoreGiven, p.ScoreMax = sc.Result, 1
		}
		return p, nil
	}
	if launch.InsecureOutcomeURL(sess.OutcomeURL) {
		warns = append(warns, fmt.Sprintf("the outcome service %s is plain http to a host that is not loopback: this score travels unencrypted", sess.OutcomeURL))
	}
	if comment != "" {
		if containsFold(sess.ResultDataAccepted, "text") {
			p.ResultData = comment
		} else {
			warns = append(warns, "the LMS did not advertise comments (resultData text) for this launch; sending the score without the comment")
		}
	}
	if sess.SubmittedAtAccepted {
		p.SubmittedAt = now.UTC().Format(time.RFC3339)
	}
	return p, warns
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// Preview builds the request a passback would send, without sending it.
func (g *Local) Preview(p *store.Passback) (*DryRequest, error) {
	if p.Protocol == "ags" {
		plat, err := g.Platform(p.ConsumerKey, p.ClientID)
		if _, ok := SecretUnavailable(err); ok {
			// The body does not depend on the key, only its signature does.
			plat, err = g.platformWithoutKey(p.ConsumerKey, p.ClientID)
		}
		if err != nil {
			return nil, err
		}
		body, err := ags.ScoreJSON(plat, ags.Score{UserID: p.SourcedID, ScoreGiven: p.ScoreGiven, ScoreMaximum: p.ScoreMax,
			Comment: p.Comment, Timestamp: p.CreatedAt})
		if err != nil {
			return nil, err
		}
		target := p.TargetURL
		if target != "" {
			if u, err := ags.ScoreURL(target); err == nil {
				target = u
			}
		} else {
			target = "(line item of resource link " + p.ResourceLinkID + " in " + p.LineItems + ")"
		}
		return &DryRequest{URL: target, ConsumerKey: p.ConsumerKey, SourcedID: p.SourcedID, Score: p.Score, Body: string(body)}, nil
	}
	req := lti11.ResultRequest{Op: lti11.ReplaceResult, SourcedID: p.SourcedID, Score: p.Score,
		ResultDataText: p.ResultData, MessageID: "dry-run"}
	if p.SubmittedAt != "" {
		t, _ := time.Parse(time.RFC3339, p.SubmittedAt)
		req.SubmittedAt = &t
	}
	body, err := lti11.BuildPOX(req)
	if err != nil {
		return nil, err
	}
	return &DryRequest{URL: p.TargetURL, ConsumerKey: p.ConsumerKey, SourcedID: p.SourcedID, Score: p.Score,
		ResultData: p.ResultData, SubmittedAt: p.SubmittedAt, Body: string(body)}, nil
}

// KeyFileHint says how to fix a private key file keys.LoadFile refused.
func KeyFileHint(name string) string {
	fi, err := os.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "create it with `ltigrade keys generate --out " + name + "` and register `ltigrade keys jwks` with the LMS"
	case errors.Is(err, fs.ErrPermission):
		return "make " + name + " readable by the user ltigrade runs as (its owner, mode 600)"
	case err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0:
		return "chmod 600 " + name
	}
	return "put the PEM private key registered with the LMS in " + name
}
