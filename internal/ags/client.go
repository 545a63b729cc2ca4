// Package ags is a client for LTI 1.3 Assignment and Grade Services: the
// OAuth 2 client-credentials token (authenticated by an RS256 client
// assertion), score publishing, result reading and line item lookup.
//
// Like internal/lti11, every call sends at most one request for the
// operation and classifies the answer as Sent, Rejected or Retry; it never
// retries on its own, the outbox owns the schedule. Messages are single-line,
// at most 300 runes, and carry no access token, assertion or key.
//
// Only https URLs are used, with TLS verification on (http is allowed for
// loopback hosts, i.e. local test doubles).
package ags

import (
	"crypto/rsa"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ltigrade/ltigrade/internal/outcome"
)

// AGS scopes.
const (
	ScopeScore            = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
	ScopeLineItem         = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
	ScopeLineItemReadOnly = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
	ScopeResultReadOnly   = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
)

// Media types of the AGS services.
const (
	ScoreMediaType             = "application/vnd.ims.lis.v1.score+json"
	ResultContainerMediaType   = "application/vnd.ims.lis.v2.resultcontainer+json"
	LineItemContainerMediaType = "application/vnd.ims.lis.v2.lineitemcontainer+json"
)

// Status is the shared vocabulary of package outcome.
type Status = outcome.Status

// The statuses of an AGS request.
const (
	Sent       = outcome.Sent
	Rejected   = outcome.Rejected
	Retry      = outcome.Retry
	Superseded = outcome.Superseded
)

// Outcome is the classified result of PostScore.
type Outcome struct {
	Status     Status
	Message    string        // single line, sanitised, no credentials
	HTTPStatus int           // of the score request; 0 if none was answered
	RetryAfter time.Duration // from Retry-After (capped at MaxRetryAfter)
	// NotSent (with HTTPStatus 0) says the score request was never
	// written: no token could be had, the connection was refused, its TLS
	// handshake failed, or ctx ended first; the platform cannot act on it.
	// False means it may have.
	NotSent bool
}

// Error is what Token, Results and FindLineItem return for a failed
// request; Status says whether trying again later can help.
type Error struct {
	Status     Status // Rejected or Retry
	Message    string // single line, sanitised, no credentials
	HTTPStatus int
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// MaxRetryAfter caps the wait a platform can impose through Retry-After.
const MaxRetryAfter = time.Hour

// DefaultMaxBody is how much of one response body the client reads.
const DefaultMaxBody = 1 << 20

// DefaultMaxPages bounds paging through results and line items.
const DefaultMaxPages = 100

// DefaultTimeout bounds one request when Client.HTTP is nil.
const DefaultTimeout = 30 * time.Second

// Platform is one LTI 1.3 platform registration as the tool sees it.
type Platform struct {
	Issuer   string
	ClientID string
	TokenURL string
	// Audience is the aud of client assertions; "" means TokenURL
	// (Brightspace wants its own, https://api.brightspace.com/auth/token).
	Audience string
	KeyID    string // kid of Key as registered; "" means none in the header
	Key      *rsa.PrivateKey
	// Canvas forces the Canvas score extension; it is also sent when the
	// issuer's host names Canvas (see IsCanvas).
	Canvas bool
}

// IsCanvas reports whether scores carry Canvas's
// "https://canvas.instructure.com/lti/submission" extension: when Canvas is
// set, or the issuer's host contains "canvas" or is under instructure.com
// (Canvas cloud issuers are https://canvas.instructure.com and
// https://canvas.test.instructure.com; self-hosted ones keep the former).
// Other platforms must ignore unknown members, but the extension is kept to
// Canvas so no other platform's validator is surprised.
func (p Platform) IsCanvas() bool {
	if p.Canvas {
		return true
	}
	u, err := url.Parse(p.Issuer)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return strings.Contains(h, "canvas") || h == "instructure.com" || strings.HasSuffix(h, ".instructure.com")
}

func (p Platform) audience() string {
	if p.Audience != "" {
		return p.Audience
	}
	return p.TokenURL
}

// Client talks to AGS platforms. The zero value is ready to use; share one
// Client between goroutines so they share token fetches.
type Client struct {
	HTTP     *http.Client     // nil: a client with DefaultTimeout
	Now      func() time.Time // nil: time.Now
	Cache    TokenCache       // nil: an in-memory cache private to this Client
	MaxBody  int64            // <= 0: DefaultMaxBody
	MaxPages int              // <= 0: DefaultMaxPages

	mu    sync.Mutex
	mem   *MemoryCache
	locks map[string]*sync.Mutex
}

var defaultHTTP = &http.Client{Timeout: DefaultTimeout}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) cache() TokenCache {
	if c.Cache != nil {
		return c.Cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mem == nil {
		c.mem = NewMemoryCache()
	}
	return c.mem
}

// keyLock serialises token fetches per cache key, so concurrent sends
// wait for one fetch instead of each fetching.
func (c *Client) keyLock(key string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locks == nil {
		c.locks = map[string]*sync.Mutex{}
	}
	m := c.locks[key]
	if m == nil {
		m = &sync.Mutex{}
		c.locks[key] = m
	}
	return m
}

// httpClient returns the configured client with redirects disabled: a
// redirected POST cannot deliver a score, and a redirect could carry the
// bearer token elsewhere; the 3xx is reported instead.
func (c *Client) httpClient() *http.Client {
	base := c.HTTP
	if base == nil {
		base = defaultHTTP
	}
	hc := *base
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hc
}

func (c *Client) maxBody() int64 {
	if c.MaxBody > 0 {
		return c.MaxBody
	}
	return DefaultMaxBody
}

// readBody reads at most maxBody bytes; tooBig reports a longer body.
func (c *Client) readBody(r io.Reader) (data []byte, tooBig bool, err error) {
	limit := c.maxBody()
	data, err = io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(data)) > limit {
		return data[:limit], true, err
	}
	return data, false, err
}

// transientStatus lists HTTP statuses that mean "not now".
func transientStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500 && code < 600
}
