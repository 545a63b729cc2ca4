package ags

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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

// sanitize makes s a single line: invalid UTF-8, control, line, paragraph
// and bidi-override characters become spaces, and runs of spaces collapse.
func sanitize(s string) string {
	var b strings.Builder
	space := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.IsSpace(r) ||
			r == '\u2028' || r == '\u2029' || (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069') {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
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
	return tagRE.ReplaceAllString(string(body), " ")
}

// retryAfter reads Retry-After as delay-seconds or an HTTP date, capped.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	return min(max(d, 0), MaxRetryAfter)
}

// describeErr renders a transport error without the URL that *url.Error
// adds and with timeouts named plainly.
func describeErr(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
