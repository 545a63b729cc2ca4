package ags

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/lmsmsg"
)

// maxMessage is the longest text kept in an Outcome or error message, in runes.
const maxMessage = 300

var (
	tagRE    = regexp.MustCompile(`<[^>]*>`)
	bearerRE = regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+`)
	// jwtRE matches anything shaped like a JWS (an assertion, or a JWT
	// access token) so that a platform echoing one is scrubbed even when it
	// is not ours.
	jwtRE      = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)
	tokenKVRE  = regexp.MustCompile(`(?i)("?(?:access_token|client_assertion|refresh_token|id_token)"?\s*[:=]\s*"?)[^"&,;\s}]+`)
	pemBlockRE = regexp.MustCompile(`-----BEGIN[^-]*-----[\s\S]*?(-----END[^-]*-----|$)`)
)

// redactor scrubs credentials from messages: the access tokens and the
// assertion we sent, plus anything token-shaped a platform echoes back.
type redactor struct{ words []string }

func (r *redactor) add(w string) {
	if w != "" {
		r.words = append(r.words, w, url.QueryEscape(w))
	}
}

// clean redacts before and after sanitising and truncates last, so a cut
// never leaves part of a credential behind.
func (r *redactor) clean(s string) string {
	s = r.scrub(s)
	s = r.scrub(sanitize(s))
	return truncate(s, maxMessage)
}

func (r *redactor) scrub(s string) string {
	if r != nil {
		for _, w := range r.words {
			s = strings.ReplaceAll(s, w, "[redacted]")
		}
	}
	s = pemBlockRE.ReplaceAllString(s, "[redacted]")
	s = jwtRE.ReplaceAllString(s, "[redacted]")
	s = bearerRE.ReplaceAllString(s, "${1}[redacted]")
	return tokenKVRE.ReplaceAllString(s, "${1}[redacted]")
}

// bodyText turns an error body into a hint: the JSON error fields when the
// body is JSON (AGS platforms mostly answer {"error": ...} or
// {"errors": [...]}), else the text with tags removed.
func bodyText(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	if len(body) > 64<<10 {
		body = body[:64<<10]
	}
	if t := jsonErrorText(body); t != "" {
		return t
	}
	switch strings.TrimSpace(string(body)) {
	case "[]", "{}", "null", `""`:
		// Says nothing (Moodle's 409 body is "[]"): the status line may.
		return ""
	}
	return tagRE.ReplaceAllString(string(body), " ")
}

// The LMS answer helpers shared with the other client live in lmsmsg.
func retryAfter(h http.Header, now time.Time) time.Duration {
	return lmsmsg.RetryAfter(h, now, MaxRetryAfter)
}
func describeErr(err error) string    { return lmsmsg.DescribeErr(err) }
func sanitize(s string) string        { return lmsmsg.Sanitize(s) }
func truncate(s string, n int) string { return lmsmsg.Truncate(s, n) }
func containsFold(s, sub string) bool { return lmsmsg.ContainsFold(s, sub) }
