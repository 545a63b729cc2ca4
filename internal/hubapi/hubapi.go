// Package hubapi is the little of JupyterHub's REST API that ltigrade's
// grading service needs: who holds a token (GET /hub/api/user), cached
// briefly so a burst of requests costs one round trip to the hub, and the
// OAuth endpoints a service uses to log browsers in through the hub.
//
// Tokens are secrets: they are never logged or put in errors, and the cache
// keys on their SHA-256, not the token itself.
package hubapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// User is who a token belongs to, as the hub says.
type User struct {
	Name   string   `json:"name"`
	Kind   string   `json:"kind"` // "user" or "service"
	Admin  bool     `json:"admin"`
	Groups []string `json:"groups"`
	Scopes []string `json:"scopes"`
}

// ErrUnauthorized says the hub does not accept the token (401 or 403).
var ErrUnauthorized = errors.New("the hub does not accept this token")

// Client talks to one hub's API (JUPYTERHUB_API_URL, e.g.
// http://127.0.0.1:8081/hub/api).
type Client struct {
	APIURL string
	HTTP   *http.Client
	// TTL is how long a token's answer is cached; 0 means 30 s. A revoked
	// token keeps working that long, which is the price of not asking the
	// hub on every request (JupyterHub's own HubAuth caches for 5 min).
	TTL time.Duration
	// Now is the clock of the cache; nil means time.Now.
	Now func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	user    *User
	err     error
	expires time.Time
}

// maxCache bounds the cache: beyond it, expired entries are swept, and if
// none has expired the cache starts over.
const maxCache = 10000

// maxReply bounds what is read of a hub answer.
const maxReply = 1 << 20

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) ttl() time.Duration {
	if c.TTL > 0 {
		return c.TTL
	}
	return 30 * time.Second
}

// User returns the owner of token, from the cache when the hub answered
// for it within TTL. Refusals are cached too (a shorter while), so a
// client retrying a bad token does not hammer the hub.
func (c *Client) User(ctx context.Context, token string) (*User, error) {
	if token == "" {
		return nil, ErrUnauthorized
	}
	key := sha256.Sum256([]byte(token))
	now := c.now()
	c.mu.Lock()
	if e, ok := c.cache[key]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.user, e.err
	}
	c.mu.Unlock()
	u, err := c.fetchUser(ctx, token)
	if err != nil && !errors.Is(err, ErrUnauthorized) {
		return nil, err // the hub is down or confused: ask again next time
	}
	ttl := c.ttl()
	if err != nil {
		ttl = min(ttl, 5*time.Second)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil {
		c.cache = map[[32]byte]cached{}
	}
	if len(c.cache) >= maxCache {
		for k, e := range c.cache {
			if !now.Before(e.expires) {
				delete(c.cache, k)
			}
		}
		if len(c.cache) >= maxCache {
			c.cache = map[[32]byte]cached{}
		}
	}
	c.cache[key] = cached{user: u, err: err, expires: now.Add(ttl)}
	return u, err
}

func (c *Client) fetchUser(ctx context.Context, token string) (*User, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.APIURL, "/")+"/user", nil)
	if err != nil {
		return nil, fmt.Errorf("hub api: %w", err)
	}
	req.Header.Set("Authorization", "token "+token)
	req.Header.Set("Accept", "application/json")
	var u User
	if err := c.do(req, &u); err != nil {
		return nil, err
	}
	if u.Name == "" {
		return nil, errors.New("hub api: /user answered without a name")
	}
	return &u, nil
}

func (c *Client) do(req *http.Request, v any) error {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry nothing secret, but keep errors short
		}
		return fmt.Errorf("hub api: %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return fmt.Errorf("hub api: %s: %w", req.URL.Path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return ErrUnauthorized
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("hub api: %s answered %s", req.URL.Path, resp.Status)
	case len(body) > maxReply:
		return fmt.Errorf("hub api: %s answered more than %d bytes", req.URL.Path, maxReply)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("hub api: %s: %w", req.URL.Path, err)
	}
	return nil
}

// BearerToken reads a hub token from an Authorization header: "token X"
// (JupyterHub's form) or "bearer X", case-insensitive.
func BearerToken(h http.Header) string {
	v := strings.TrimSpace(h.Get("Authorization"))
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok {
		return ""
	}
	switch strings.ToLower(scheme) {
	case "token", "bearer":
		return strings.TrimSpace(tok)
	}
	return ""
}
