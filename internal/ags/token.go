package ags

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RefreshBefore is how long before its expiry a cached token stops being
// used, so that it cannot expire on the way to the platform.
const RefreshBefore = 60 * time.Second

// DefaultTokenLifetime is assumed when a token reply has no expires_in.
const DefaultTokenLifetime = 5 * time.Minute

// Token is an access token. Expiry is when to stop using it: the
// platform's expiry less RefreshBefore (or less half the lifetime, for
// tokens that live under two minutes).
type Token struct {
	AccessToken string    `json:"access_token"`
	Scope       string    `json:"scope,omitempty"` // as granted, space-separated
	Expiry      time.Time `json:"expiry"`
}

// Valid reports whether t can still be used at now.
func (t Token) Valid(now time.Time) bool { return t.AccessToken != "" && now.Before(t.Expiry) }

// String never shows the token itself.
func (t Token) String() string { return "token(expires " + t.Expiry.UTC().Format(time.RFC3339) + ")" }

// GoString never shows the token itself.
func (t Token) GoString() string { return t.String() }

// TokenCache keeps tokens between calls, by CacheKey. Get returns false
// for an unknown key; expired entries may be returned (the client checks
// Expiry). A store-backed implementation lets separate ltigrade processes
// share one token. Put with a zero Token forgets the key.
type TokenCache interface {
	Get(key string) (Token, bool)
	Put(key string, t Token)
}

// MemoryCache is a TokenCache for one process.
type MemoryCache struct {
	mu sync.Mutex
	m  map[string]Token
}

// NewMemoryCache returns an empty MemoryCache.
func NewMemoryCache() *MemoryCache { return &MemoryCache{m: map[string]Token{}} }

// Get implements TokenCache.
func (c *MemoryCache) Get(key string) (Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[key]
	return t, ok
}

// Put implements TokenCache.
func (c *MemoryCache) Put(key string, t Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]Token{}
	}
	if t.AccessToken == "" {
		delete(c.m, key)
		return
	}
	c.m[key] = t
}

// CacheKey identifies tokens of one platform registration and scope set:
// issuer, client_id, token URL and the sorted scopes, space-separated.
func CacheKey(p Platform, scopes []string) string {
	s := slices.Clone(scopes)
	slices.Sort(s)
	s = slices.Compact(s)
	// The key id is part of it: a token obtained with a key that has since
	// been replaced must not outlive the replacement.
	return strings.Join([]string{p.Issuer, p.ClientID, p.TokenURL, p.KeyID, strings.Join(s, " ")}, "\n")
}

// Token returns a valid access token for scopes, from the cache when it
// holds one, else from the platform (one request). Errors are *Error.
func (c *Client) Token(ctx context.Context, p Platform, scopes ...string) (Token, error) {
	t, _, err := c.token(ctx, p, scopes, "")
	return t, err
}

// token is Token; a non-empty refused names a token the platform refused
// (HTTP 401, or edX's 403), which is dropped instead of used. fetched says
// the token was fetched by this call: the platform issued it just now, so
// a refusal of it is not a stale cache entry.
func (c *Client) token(ctx context.Context, p Platform, scopes []string, refused string) (t Token, fetched bool, err error) {
	key := CacheKey(p, scopes)
	cache := c.cache()
	if t, ok := cache.Get(key); ok && t.Valid(c.now()) && t.AccessToken != refused {
		return t, false, nil
	}
	m := c.keyLock(key)
	m.Lock()
	defer m.Unlock()
	// Another goroutine (or process, with a shared cache) may have fetched
	// one while we waited.
	if t, ok := cache.Get(key); ok && t.Valid(c.now()) && t.AccessToken != refused {
		return t, false, nil
	}
	if refused != "" {
		cache.Put(key, Token{})
	}
	t, err = c.fetchToken(ctx, p, scopes)
	if err != nil {
		return Token{}, false, err
	}
	cache.Put(key, t)
	return t, true, nil
}

// dropToken forgets tok if the cache still holds it for scopes, so the
// next request fetches a new one.
func (c *Client) dropToken(p Platform, scopes []string, tok Token) {
	key := CacheKey(p, scopes)
	m := c.keyLock(key)
	m.Lock()
	defer m.Unlock()
	cache := c.cache()
	if t, ok := cache.Get(key); ok && t.AccessToken == tok.AccessToken {
		cache.Put(key, Token{})
	}
}

type tokenReply struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
	Scope       string          `json:"scope"`
	Error       string          `json:"error"`
	Description string          `json:"error_description"`
}

func (c *Client) fetchToken(ctx context.Context, p Platform, scopes []string) (Token, error) {
	red := &redactor{}
	fail := func(st Status, code int, ra time.Duration, msg string) (Token, error) {
		return Token{}, &Error{Status: st, HTTPStatus: code, RetryAfter: ra, Message: red.clean(msg)}
	}
	if _, err := parseServiceURL(p.TokenURL, "token"); err != nil {
		return fail(Rejected, 0, 0, err.Error())
	}
	if p.ClientID == "" || p.Key == nil {
		return fail(Rejected, 0, 0, "platform "+p.Issuer+" has no client_id or private key")
	}
	start := c.now()
	assertion, err := Assertion(p.ClientID, p.audience(), p.KeyID, p.Key, start)
	if err != nil {
		return fail(Rejected, 0, 0, err.Error())
	}
	red.add(assertion)
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
		"scope":                 {strings.Join(scopes, " ")},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fail(Rejected, 0, 0, "cannot build token request: "+describeErr(err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fail(Retry, 0, 0, "token request failed: "+describeErr(err))
	}
	defer resp.Body.Close()
	data, tooBig, err := c.readBody(resp.Body)
	code := resp.StatusCode
	ra := retryAfter(resp.Header, c.now())
	if err != nil {
		return fail(Retry, code, ra, fmt.Sprintf("token request: HTTP %d, reading response failed: %s", code, describeErr(err)))
	}
	var r tokenReply
	jsonErr := json.Unmarshal(data, &r)
	if tooBig {
		jsonErr = fmt.Errorf("oversized")
	}
	if jsonErr == nil {
		red.add(r.AccessToken)
	}
	switch {
	case code == http.StatusOK && jsonErr == nil && r.AccessToken != "":
		if r.TokenType != "" && !strings.EqualFold(r.TokenType, "bearer") {
			return fail(Rejected, code, 0, "token endpoint issued an unsupported token type "+strconv.Quote(truncate(r.TokenType, 40)))
		}
		life := DefaultTokenLifetime
		if secs, ok := parseExpiresIn(r.ExpiresIn); ok {
			life = time.Duration(secs) * time.Second
		}
		// Counted from before the request: the platform's clock started
		// no earlier than that.
		return Token{AccessToken: r.AccessToken, Scope: r.Scope, Expiry: start.Add(life - min(RefreshBefore, life/2))}, nil
	case code >= 200 && code < 300:
		return fail(Retry, code, ra, fmt.Sprintf("token endpoint answered HTTP %d without an access token", code))
	case transientStatus(code):
		return fail(Retry, code, ra, fmt.Sprintf("token endpoint temporarily unavailable (HTTP %d)%s", code, detail(r, jsonErr, data, tooBig)))
	case code >= 300 && code < 400:
		return fail(Rejected, code, 0, fmt.Sprintf("token endpoint redirected (HTTP %d); fix token_url", code))
	}
	// OAuth errors (RFC 6749 5.2: invalid_client, invalid_grant,
	// invalid_scope, unauthorized_client, ...) and any other 4xx: a
	// configuration problem (key not registered, wrong client_id or aud,
	// scope not granted) that resending the same request will not fix.
	return fail(Rejected, code, 0, fmt.Sprintf("token request refused (HTTP %d)%s", code, detail(r, jsonErr, data, tooBig)))
}

func detail(r tokenReply, jsonErr error, data []byte, tooBig bool) string {
	switch {
	case tooBig:
		return ": oversized response body"
	case jsonErr == nil && r.Error != "":
		s := ": " + r.Error
		if r.Description != "" {
			s += ": " + r.Description
		}
		return s
	}
	if t := sanitize(bodyText(data)); t != "" {
		return ": " + t
	}
	return ""
}

// parseExpiresIn accepts a JSON number or a numeric string (some platforms
// send "3600").
func parseExpiresIn(raw json.RawMessage) (int64, bool) {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	if s == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 366*24*3600 {
		return 0, false
	}
	return int64(f), true
}
