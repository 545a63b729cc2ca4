package ags

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
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
	// Resent says an earlier attempt posted this very score (same
	// timestamp) and may have reached the platform: a refusal because a
	// score with this timestamp already exists then means that attempt
	// delivered it and only its reply was lost.
	Resent bool
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
//     one (Canvas "before last updated", edX "can only be updated to a
//     later point in time"): Superseded; the platform holds a newer score,
//     so nothing is lost.
//   - 400/409/422 saying a score with this very timestamp already exists
//     (edX "Score already exists for the provided timestamp"): Sent when
//     s.Resent (an earlier attempt of ours, whose reply was lost, delivered
//     it), else Rejected.
//   - 401 or 403 with a cached token: the platform no longer accepts it
//     (revoked or expired early; edX answers 403 after rotating its key).
//     It is dropped, one new token fetched, and the score sent once more
//     with it; that answer is classified as below. The refused request
//     was not acted on, so sending it again cannot duplicate anything.
//   - 401 with a token fetched for this call: it is dropped and, unless it
//     was the replacement above, a new one fetched now; Retry (the next
//     attempt uses it). If that fetch fails its classification is
//     returned.
//   - 408, 425, 429, 5xx, network errors: Retry, with Retry-After.
//   - 3xx: Rejected (fix the line item URL); other 4xx (403 with a new
//     token among them): Rejected with the platform's error text.
//   - Token endpoint failures: see Token.
//
// The platform's reason goes into the message from the body, or from the
// status line when the body says nothing (Moodle answers 409 with "[]" and
// the reason as the status line's phrase).
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
	tok, fetched, err := c.token(ctx, p, scopes, "")
	if err != nil {
		return tokenOutcome(err)
	}
	red.add(tok.AccessToken)
	a, o := c.postScore(ctx, u, body, tok, red)
	if o != nil {
		return *o
	}
	renewed := false
	if (a.code == http.StatusUnauthorized || a.code == http.StatusForbidden) && !fetched {
		next, _, err := c.token(ctx, p, scopes, tok.AccessToken)
		if err != nil {
			t := tokenOutcome(err)
			return Outcome{Status: t.Status, HTTPStatus: a.code, RetryAfter: t.RetryAfter,
				Message: red.clean(a.msg("access token refused") + "; " + t.Message)}
		}
		tok, renewed = next, true
		red.add(tok.AccessToken)
		if a, o = c.postScore(ctx, u, body, tok, red); o != nil {
			return *o
		}
	}
	code := a.code
	out := Outcome{HTTPStatus: code}
	switch {
	case code == http.StatusOK || code == http.StatusCreated || code == http.StatusAccepted || code == http.StatusNoContent:
		// The body does not matter: the platform has the score.
		out.Status, out.Message = Sent, fmt.Sprintf("score accepted (HTTP %d)", code)
	case a.readErr != nil:
		out.Status, out.Message = Retry, fmt.Sprintf("HTTP %d, reading response failed: %s", code, describeErr(a.readErr))
		out.RetryAfter = retryAfter(a.header, c.now())
	case refusalStatus(code) && sameTimestampRefusal(a.text):
		if s.Resent {
			out.Status, out.Message = Sent, a.msg("score already delivered by an earlier attempt whose reply was lost")
		} else {
			out.Status, out.Message = Rejected, a.msg("score rejected: the platform holds another score with this timestamp")
		}
	case code == http.StatusConflict || ((code == http.StatusBadRequest || code == http.StatusUnprocessableEntity) && orderingRefusal(a.text)):
		out.Status = Superseded
		out.Message = a.msg(SupersededMessage)
	case code == http.StatusUnauthorized && renewed:
		// "Once": the replacement was refused too; the next attempt
		// fetches another.
		c.dropToken(p, scopes, tok)
		out.Status, out.Message = Retry, a.msg("a new access token was refused too")
	case code == http.StatusUnauthorized:
		out.Status, out.Message = Retry, a.msg("access token refused; fetched a new one")
		if _, _, err := c.token(ctx, p, scopes, tok.AccessToken); err != nil {
			t := tokenOutcome(err)
			out.Status, out.RetryAfter = t.Status, t.RetryAfter
			out.Message = a.msg("access token refused") + "; " + t.Message
		}
	case transientStatus(code):
		out.Status, out.Message = Retry, a.msg("platform temporarily unavailable")
		out.RetryAfter = retryAfter(a.header, c.now())
	case code >= 300 && code < 400:
		out.Status, out.Message = Rejected, a.msg("platform redirected; fix the line item url")
	case code == http.StatusForbidden && renewed:
		out.Status, out.Message = Rejected, a.msg("score rejected with a new access token too")
	case code >= 400 && code < 500:
		out.Status, out.Message = Rejected, a.msg("score rejected")
	default:
		out.Status, out.Message = Retry, a.msg("unexpected answer")
		out.RetryAfter = retryAfter(a.header, c.now())
	}
	out.Message = red.clean(out.Message)
	return out
}

// SupersededMessage starts the message of a score the platform refused as
// older than the one it holds.
const SupersededMessage = "superseded: the platform already holds a newer score for this user"

// answer is one HTTP answer to a request of ours.
type answer struct {
	code    int
	header  http.Header
	text    string // the error text of the body (see bodyText), or the status line's reason
	readErr error
}

// msg is what, the status and the platform's text.
func (a answer) msg(what string) string {
	m := fmt.Sprintf("%s (HTTP %d)", what, a.code)
	if t := sanitize(a.text); t != "" {
		m += ": " + t
	}
	return m
}

// readAnswer reads resp into an answer. The body's error text is preferred;
// a body that says nothing (empty, "[]", "{}") leaves the status line's
// reason phrase, when it is not the standard one for the code.
func (c *Client) readAnswer(resp *http.Response) answer {
	data, tooBig, rerr := c.readBody(resp.Body)
	a := answer{code: resp.StatusCode, header: resp.Header, readErr: rerr, text: bodyText(data)}
	switch {
	case tooBig:
		a.text = "oversized response body"
	case strings.TrimSpace(sanitize(a.text)) == "":
		a.text = reasonPhrase(resp)
	}
	return a
}

// reasonPhrase is the status line's text after the code, "" when it is
// the standard one (which says nothing the code does not).
func reasonPhrase(resp *http.Response) string {
	r := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	if strings.EqualFold(r, http.StatusText(resp.StatusCode)) {
		return ""
	}
	return r
}

// postScore sends body once with tok. A request that got no answer is
// returned as the final outcome.
func (c *Client) postScore(ctx context.Context, u string, body []byte, tok Token, red *redactor) (answer, *Outcome) {
	sctx, written := lmsmsg.TraceWritten(ctx)
	req, err := http.NewRequestWithContext(sctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return answer{}, &Outcome{Status: Rejected, Message: red.clean("cannot build score request: " + describeErr(err))}
	}
	req.Header.Set("Content-Type", ScoreMediaType)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return answer{}, &Outcome{Status: Retry, Message: red.clean("score request failed: " + describeErr(err)), NotSent: !written()}
	}
	defer resp.Body.Close()
	return c.readAnswer(resp), nil
}

// refusalStatus lists the statuses platforms refuse a score's timestamp
// with.
func refusalStatus(code int) bool {
	return code == http.StatusBadRequest || code == http.StatusConflict || code == http.StatusUnprocessableEntity
}

// sameTimestampRefusal recognises a refusal because the platform already
// holds a score with exactly this timestamp (edX's LtiAgsScoreSerializer:
// "Score already exists for the provided timestamp").
func sameTimestampRefusal(text string) bool {
	return containsFold(text, "timestamp") && (containsFold(text, "already exists") || containsFold(text, "same timestamp"))
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
			known := false
			for _, k := range []string{"error", "error_description", "message", "reason", "detail", "errors", "status"} {
				if e, ok := x[k]; ok {
					known = true
					walk(e, depth+1)
				}
			}
			if known || depth > 0 {
				return
			}
			// Django REST framework's validation errors name the field:
			// {"timestamp": ["Score already exists ..."]}.
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				n := len(parts)
				walk(x[k], depth+1)
				if len(parts) > n {
					parts[n] = k + ": " + parts[n]
				}
			}
		}
	}
	walk(v, 0)
	return strings.Join(parts, ": ")
}
