package lti11

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/lmsmsg"
	"github.com/ltigrade/ltigrade/internal/outcome"
)

// Status is the shared vocabulary of package outcome; LTI 1.1 never
// answers Superseded (replaceResult has no ordering).
type Status = outcome.Status

// The statuses of an outcome request.
const (
	Sent     = outcome.Sent
	Rejected = outcome.Rejected
	Retry    = outcome.Retry
)

// Outcome is the classified result of Client.Do.
type Outcome struct {
	Status Status
	// Message is short, single-line and sanitised: safe for logs and
	// terminals, free of the secret and the Authorization header.
	Message    string
	HTTPStatus int           // 0 when no HTTP response arrived
	RetryAfter time.Duration // from Retry-After, capped at MaxRetryAfter; 0 if absent
	Response   *Response     // the parsed POX response, when there was one
	// NotSent (with HTTPStatus 0) says no request was written: the
	// connection was refused, its TLS handshake failed, or ctx ended
	// before, so the LMS cannot act on it. False means it may have: the
	// headers were written (to the socket or its buffer), if not the body.
	NotSent bool
}

// MaxRetryAfter caps the wait an LMS can impose through Retry-After, so a
// misconfigured header cannot park a grade for days.
const MaxRetryAfter = time.Hour

// DefaultMaxBody is how much of a response body Client reads.
const DefaultMaxBody = 1 << 20

// DefaultTimeout bounds one request when Client.HTTP is nil: the standard
// library's default client never times out, and a hung LMS would hold a
// worker forever.
const DefaultTimeout = 30 * time.Second

// maxMessage is the longest LMS-supplied text kept in a message, in runes.
const maxMessage = 300

// Client sends outcome requests. The zero value is ready to use.
type Client struct {
	HTTP    *http.Client     // nil: a client with DefaultTimeout
	Now     func() time.Time // clock for OAuth timestamps and Retry-After dates; nil: time.Now
	MaxBody int64            // response bytes read at most; <= 0: DefaultMaxBody
}

var defaultHTTP = &http.Client{Timeout: DefaultTimeout}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// httpClient returns the configured client with redirects disabled. A
// redirected POST either turns into a GET (301/302/303) or reaches a URL the
// signature does not cover (307/308), and it may carry the Authorization
// header to another host: none of that can deliver a grade, so the 3xx is
// reported instead.
func (c *Client) httpClient() *http.Client {
	base := c.HTTP
	if base == nil {
		base = defaultHTTP
	}
	hc := *base
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hc
}

// Do sends one signed outcome request and classifies the answer. It never
// retries by itself; the caller owns the schedule, and must call Do again
// (which signs afresh) for a Retry outcome. If r.MessageID is empty a random
// one is used.
func (c *Client) Do(ctx context.Context, serviceURL, key, secret string, r ResultRequest) Outcome {
	if c == nil {
		c = &Client{}
	}
	red := newRedactor(secret)
	if r.MessageID == "" {
		r.MessageID = randomNonce()
	}
	body, err := BuildPOX(r)
	if err != nil {
		return Outcome{Status: Rejected, Message: red.clean("cannot build request: " + err.Error())}
	}
	u, err := url.Parse(serviceURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Outcome{Status: Rejected, Message: "invalid outcome service url"}
	}
	ctx, written := lmsmsg.TraceWritten(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, serviceURL, bytes.NewReader(body))
	if err != nil {
		return Outcome{Status: Rejected, Message: red.clean("cannot build request: " + describeErr(err))}
	}
	req.Header.Set("Content-Type", "application/xml")
	req.Header.Set("Accept", "application/xml")
	sig, err := (Signer{Key: key, Secret: secret, Now: c.Now}).sign(req, body)
	if err != nil {
		return Outcome{Status: Rejected, Message: red.clean("cannot sign request: " + err.Error())}
	}
	red.addSigned(req.Header.Get("Authorization"), sig)

	resp, err := c.httpClient().Do(req)
	if err != nil {
		return Outcome{Status: Retry, Message: red.clean("request failed: " + describeErr(err)), NotSent: !written()}
	}
	defer resp.Body.Close()
	limit := c.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return Outcome{Status: Retry, HTTPStatus: resp.StatusCode,
			RetryAfter: retryAfter(resp.Header, c.now()),
			Message:    red.clean(fmt.Sprintf("HTTP %d, reading response failed: %s", resp.StatusCode, describeErr(err)))}
	}
	tooBig := int64(len(data)) > limit
	if tooBig {
		data = nil
	}
	o := classify(resp.StatusCode, resp.Status, data, tooBig)
	o.HTTPStatus = resp.StatusCode
	if o.Status == Retry {
		o.RetryAfter = retryAfter(resp.Header, c.now())
	}
	o.Message = red.clean(o.Message)
	return o
}

// classify decides the Status from one HTTP answer. The POX body, when there
// is a valid one, is authoritative in both directions: Moodle and Blackboard
// report failure with HTTP 200 and Canvas with 422, and an explicit success
// means the LMS stored the grade whatever status line came with it.
func classify(code int, statusLine string, body []byte, tooBig bool) Outcome {
	var pox *Response
	if !tooBig {
		if p, err := ParseResponse(body); err == nil {
			pox = p
		}
	}
	if pox != nil {
		desc := pox.Description
		if desc == "" {
			desc = "no description"
		}
		switch strings.ToLower(pox.CodeMajor) {
		case "success":
			return Outcome{Status: Sent, Response: pox, Message: fmt.Sprintf("accepted (HTTP %d): %s", code, desc)}
		case "processing":
			// The LMS took the operation and will finish it asynchronously;
			// it owns the grade now, and resending could only queue a copy.
			return Outcome{Status: Sent, Response: pox, Message: fmt.Sprintf("accepted for processing (HTTP %d): %s", code, desc)}
		case "failure", "unsupported":
			if transientStatus(code) || transientText(pox.Description) {
				return Outcome{Status: Retry, Response: pox, Message: fmt.Sprintf("temporary failure (HTTP %d, %s): %s", code, pox.CodeMajor, desc)}
			}
			return Outcome{Status: Rejected, Response: pox, Message: fmt.Sprintf("rejected (HTTP %d, %s): %s", code, pox.CodeMajor, desc)}
		}
		// An unknown codeMajor tells us nothing; fall through to the status.
	}

	detail := bodySnippet(body)
	if tooBig {
		detail = "oversized response body"
	}
	msg := func(what string) string {
		s := strings.TrimSpace(statusLine)
		if s == "" {
			s = strconv.Itoa(code)
		}
		m := what + " (HTTP " + s + ")"
		if detail != "" {
			m += ": " + detail
		}
		return m
	}
	switch {
	case code >= 200 && code < 300:
		// The LMS answered 2xx but not in POX: it may well have stored the
		// grade. Saying Sent could lose a grade that was not stored; saying
		// Rejected would drop one the LMS can take. Every operation is
		// idempotent, so resending is the safe choice.
		return Outcome{Status: Retry, Message: msg("no valid pox response")}
	case transientStatus(code):
		return Outcome{Status: Retry, Message: msg("lms temporarily unavailable")}
	case code == http.StatusForbidden && (containsFold(statusLine, "rate limit") || containsFold(string(body), "rate limit")):
		// Canvas historically throttled with "403 Forbidden (Rate Limit Exceeded)".
		return Outcome{Status: Retry, Message: msg("rate limited")}
	case code == http.StatusUnauthorized && nonceReplay(string(body)+" "+statusLine):
		// Canvas answers a reused nonce with 401 "Duplicate nonce detected";
		// the next attempt carries a fresh nonce.
		return Outcome{Status: Retry, Message: msg("nonce refused")}
	case code >= 300 && code < 400:
		return Outcome{Status: Rejected, Message: msg("lms redirected; fix the outcome service url")}
	case code >= 400 && code < 500:
		return Outcome{Status: Rejected, Message: msg("rejected")}
	}
	return Outcome{Status: Retry, Message: msg("unexpected answer")}
}

// transientStatus lists HTTP statuses that mean "not now".
func transientStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500 && code < 600
}

// transientPhrases are failure descriptions that come from a momentary
// condition (throttling, a busy database, a replayed nonce) rather than
// from the request itself.
var transientPhrases = []string{
	"rate limit", "too many requests", "throttl", "try again", "retry later",
	"temporarily", "temporary", "timed out", "timeout", "unavailable", "overloaded",
	"deadlock", "lock wait",
}

func transientText(s string) bool {
	for _, p := range transientPhrases {
		if containsFold(s, p) {
			return true
		}
	}
	return nonceReplay(s)
}

func nonceReplay(s string) bool {
	if !containsFold(s, "nonce") {
		return false
	}
	for _, p := range []string{"duplicate", "already", "reused", "replay", "used"} {
		if containsFold(s, p) {
			return true
		}
	}
	return false
}

var (
	tagRE = regexp.MustCompile(`<[^>]*>`)
	sigRE = regexp.MustCompile(`(?i)(oauth_signature\s*=\s*"?)[^",&\s]*`)
)

// bodySnippet turns a non-POX body (often an HTML error page) into a short
// hint: tags removed, text sanitised and truncated.
func bodySnippet(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	b := body
	if len(b) > 64<<10 {
		b = b[:64<<10]
	}
	return sanitize(tagRE.ReplaceAllString(string(b), " "))
}

// redactor scrubs credentials from messages. The secret never goes on the
// wire, but an LMS knows it and a debugging one may echo it, or echo our
// Authorization header, in an error body.
type redactor struct{ words []string }

func newRedactor(secret string) *redactor {
	r := &redactor{}
	if secret != "" {
		r.words = append(r.words, secret, percentEncode(secret), url.QueryEscape(secret), sanitize(secret))
	}
	return r
}

// clean redacts before and after sanitising (which could split or join a
// credential) and truncates only at the end, so a cut never leaves part of
// a credential behind.
func (r *redactor) clean(s string) string {
	s = r.scrub(s)
	s = r.scrub(sanitize(s))
	return truncate(s, maxMessage)
}

// addSigned adds the Authorization header this process made and the
// signature in it (known, so the header need not be parsed back).
func (r *redactor) addSigned(h, sig string) {
	r.words = append(r.words, h, sanitize(h), sig, percentEncode(sig))
}

func (r *redactor) scrub(s string) string {
	for _, w := range r.words {
		if w != "" && strings.Contains(s, w) {
			s = strings.ReplaceAll(s, w, "[redacted]")
		}
	}
	if !hasSignatureParam(s) {
		return s // the regexp costs more than the rest of a send's scrubbing
	}
	return sigRE.ReplaceAllString(s, "${1}[redacted]")
}

// hasSignatureParam: does s contain "oauth_signature" in any case?
func hasSignatureParam(s string) bool {
	const p = "oauth_signature"
	for i := 0; i+len(p) <= len(s); i++ {
		if (s[i] == 'o' || s[i] == 'O') && strings.EqualFold(s[i:i+len(p)], p) {
			return true
		}
	}
	return false
}

// The LMS answer helpers shared with the other client live in lmsmsg.
func retryAfter(h http.Header, now time.Time) time.Duration {
	return lmsmsg.RetryAfter(h, now, MaxRetryAfter)
}
func describeErr(err error) string    { return lmsmsg.DescribeErr(err) }
func sanitize(s string) string        { return lmsmsg.Sanitize(s) }
func truncate(s string, n int) string { return lmsmsg.Truncate(s, n) }
func containsFold(s, sub string) bool { return lmsmsg.ContainsFold(s, sub) }
