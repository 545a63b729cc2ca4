package ags

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/lmsmsg"
)

// Score is one grade for one user.
type Score struct {
	UserID       string  // the launch's sub
	ScoreGiven   float64 // 0 <= ScoreGiven; may exceed ScoreMaximum (extra credit)
	ScoreMaximum float64 // > 0
	Comment      string  // omitted when empty
	// Timestamp is when the score was created (not sent): platforms keep
	// the score with the latest timestamp, so a late retry of an older
	// score cannot overwrite a newer one. Sent with microseconds.
	Timestamp time.Time
}

// TimestampFormat is how Score.Timestamp is sent: RFC 3339 in UTC with
// microseconds, the precision platforms store.
const TimestampFormat = "2006-01-02T15:04:05.000000Z07:00"

// CanvasSubmissionExtension is the Canvas score extension member.
const CanvasSubmissionExtension = "https://canvas.instructure.com/lti/submission"

type scoreBody struct {
	UserID           string         `json:"userId"`
	ScoreGiven       float64        `json:"scoreGiven"`
	ScoreMaximum     float64        `json:"scoreMaximum"`
	Comment          string         `json:"comment,omitempty"`
	Timestamp        string         `json:"timestamp"`
	ActivityProgress string         `json:"activityProgress"`
	GradingProgress  string         `json:"gradingProgress"`
	Canvas           *canvasSubmExt `json:"https://canvas.instructure.com/lti/submission,omitempty"`
}

type canvasSubmExt struct {
	NewSubmission bool `json:"new_submission"`
}

// ScoreJSON returns the score body PostScore sends to p.
func ScoreJSON(p Platform, s Score) ([]byte, error) {
	switch {
	case s.UserID == "":
		return nil, fmt.Errorf("score has no user id")
	case math.IsNaN(s.ScoreGiven) || math.IsInf(s.ScoreGiven, 0) || s.ScoreGiven < 0:
		return nil, fmt.Errorf("scoreGiven %v must be a number >= 0", s.ScoreGiven)
	case math.IsNaN(s.ScoreMaximum) || math.IsInf(s.ScoreMaximum, 0) || s.ScoreMaximum <= 0:
		return nil, fmt.Errorf("scoreMaximum %v must be a number > 0", s.ScoreMaximum)
	case s.Timestamp.IsZero():
		return nil, fmt.Errorf("score has no timestamp")
	}
	b := scoreBody{
		UserID:           s.UserID,
		ScoreGiven:       s.ScoreGiven,
		ScoreMaximum:     s.ScoreMaximum,
		Comment:          s.Comment,
		Timestamp:        s.Timestamp.UTC().Format(TimestampFormat),
		ActivityProgress: "Completed",
		GradingProgress:  "FullyGraded",
	}
	if p.IsCanvas() {
		// Without it Canvas records every score as a new submission
		// attempt in the gradebook history.
		b.Canvas = &canvasSubmExt{NewSubmission: false}
	}
	return json.Marshal(b)
}

// PostScore publishes s to the line item: one POST {lineitem}/scores (after
// fetching a token when none is cached). Classification:
//
//   - 200, 201, 202, 204: Sent.
//   - 409, and 400/422 whose text says the timestamp is before the stored
//     one (Canvas "before last updated"): Rejected with Superseded set; the
//     platform holds a newer score, so nothing is lost.
//   - 401: the token was refused (expired or revoked early): it is dropped
//     and a new one fetched now, once; Retry (the next attempt uses it).
//     If that fetch fails its classification is returned.
//   - 408, 425, 429, 5xx, network errors: Retry, with Retry-After.
//   - 3xx: Rejected (fix the line item URL); other 4xx: Rejected with the
//     platform's error text.
//   - Token endpoint failures: see Token.
func (c *Client) PostScore(ctx context.Context, p Platform, lineitem string, s Score) Outcome {
	if c == nil {
		c = &Client{}
	}
	red := &redactor{}
	u, err := ScoreURL(lineitem)
	if err != nil {
		return Outcome{Status: Rejected, Message: err.Error()}
	}
	body, err := ScoreJSON(p, s)
	if err != nil {
		return Outcome{Status: Rejected, Message: red.clean("invalid score: " + err.Error())}
	}
	scopes := []string{ScopeScore}
	tok, err := c.token(ctx, p, scopes, "")
	if err != nil {
		return tokenOutcome(err)
	}
	red.add(tok.AccessToken)
	sctx, written := lmsmsg.TraceWritten(ctx)
	req, err := http.NewRequestWithContext(sctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Outcome{Status: Rejected, Message: red.clean("cannot build score request: " + describeErr(err))}
	}
	req.Header.Set("Content-Type", ScoreMediaType)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return Outcome{Status: Retry, Message: red.clean("score request failed: " + describeErr(err)), NotSent: !written()}
	}
	defer resp.Body.Close()
	data, tooBig, rerr := c.readBody(resp.Body)
	code := resp.StatusCode
	text := bodyText(data)
	if tooBig {
		text = "oversized response body"
	}
	o := Outcome{HTTPStatus: code}
	msg := func(what string) string {
		m := fmt.Sprintf("%s (HTTP %d)", what, code)
		if t := sanitize(text); t != "" {
			m += ": " + t
		}
		return m
	}
	switch {
	case code == http.StatusOK || code == http.StatusCreated || code == http.StatusAccepted || code == http.StatusNoContent:
		// The body does not matter: the platform has the score.
		o.Status, o.Message = Sent, fmt.Sprintf("score accepted (HTTP %d)", code)
	case rerr != nil:
		o.Status, o.Message = Retry, fmt.Sprintf("HTTP %d, reading response failed: %s", code, describeErr(rerr))
		o.RetryAfter = retryAfter(resp.Header, c.now())
	case code == http.StatusConflict || ((code == http.StatusBadRequest || code == http.StatusUnprocessableEntity) && orderingRefusal(text)):
		o.Status = Superseded
		o.Message = msg("superseded: the platform already holds a newer score for this user")
	case code == http.StatusUnauthorized:
		o.Status, o.Message = Retry, msg("access token refused; fetched a new one")
		if _, err := c.token(ctx, p, scopes, tok.AccessToken); err != nil {
			t := tokenOutcome(err)
			o.Status, o.RetryAfter = t.Status, t.RetryAfter
			o.Message = msg("access token refused") + "; " + t.Message
		}
	case transientStatus(code):
		o.Status, o.Message = Retry, msg("platform temporarily unavailable")
		o.RetryAfter = retryAfter(resp.Header, c.now())
	case code >= 300 && code < 400:
		o.Status, o.Message = Rejected, msg("platform redirected; fix the line item url")
	case code >= 400 && code < 500:
		o.Status, o.Message = Rejected, msg("score rejected")
	default:
		o.Status, o.Message = Retry, msg("unexpected answer")
		o.RetryAfter = retryAfter(resp.Header, c.now())
	}
	o.Message = red.clean(o.Message)
	return o
}

// tokenOutcome is the outcome of a score whose token could not be had: the
// score request was never made.
func tokenOutcome(err error) Outcome {
	if e, ok := err.(*Error); ok {
		return Outcome{Status: e.Status, Message: e.Message, RetryAfter: e.RetryAfter, NotSent: true}
	}
	return Outcome{Status: Retry, Message: (&redactor{}).clean(err.Error()), NotSent: true}
}

// orderingRefusal recognises a refusal because the stored score is newer,
// as Canvas words it ("... before last updated ..."), in a 400 body.
func orderingRefusal(text string) bool {
	if containsFold(text, "last updated") || containsFold(text, "already has a newer") || containsFold(text, "newer score") {
		return true
	}
	if !containsFold(text, "timestamp") {
		return false
	}
	for _, w := range []string{"before", "older", "earlier", "precede", "not after", "later"} {
		if containsFold(text, w) {
			return true
		}
	}
	return false
}

// jsonErrorText extracts the error text of a JSON error body: "error",
// "error_description", "message", "reason", "errors" (a list, an object
// or a string). Empty when the body is not JSON or has none of those.
func jsonErrorText(body []byte) string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	var parts []string
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > 4 || len(parts) > 8 {
			return
		}
		switch x := v.(type) {
		case string:
			parts = append(parts, x)
		case []any:
			for _, e := range x {
				walk(e, depth+1)
			}
		case map[string]any:
			for _, k := range []string{"error", "error_description", "message", "reason", "detail", "errors", "status"} {
				if e, ok := x[k]; ok {
					walk(e, depth+1)
				}
			}
		}
	}
	walk(v, 0)
	return strings.Join(parts, ": ")
}
