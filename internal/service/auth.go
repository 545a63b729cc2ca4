package service

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/ltigrade/ltigrade/internal/hubapi"
)

// Identity is who made a request, as the hub vouched for it.
type Identity struct {
	User *hubapi.User
	Role Role
	// Cookie says the request was authenticated by a browser session, so
	// unsafe methods must carry the session's CSRF token.
	Cookie bool
	CSRF   string
}

type ctxKey struct{}

// IdentityOf returns the request's identity (set by Auth.Require).
func IdentityOf(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}

// Auth authenticates requests with the hub: an Authorization header with a
// hub token (API clients, the remote CLI), or a session cookie that the
// hub's OAuth flow set (browsers).
type Auth struct {
	Hub     *hubapi.Client
	Policy  *Policy
	Service string // the service's name at the hub; tokens need access:services!service=<name>
	Prefix  string // URL prefix the service answers under, ending in "/"

	// OAuth: the service is an OAuth client of the hub.
	OAuth *oauth2.Config
	// SecureCookies marks cookies Secure (the hub is reached over https).
	SecureCookies bool
	// SessionTTL bounds a browser session; the hub token behind it is
	// re-checked with the hub (cached briefly) on every request anyway.
	SessionTTL time.Duration
	Now        func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	token   string
	csrf    string
	expires time.Time
}

const (
	sessionCookie = "ltigrade-session"
	stateCookie   = "ltigrade-oauth-state"
	// maxSessions bounds memory if someone logs in in a loop.
	maxSessions = 10000
)

func (a *Auth) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// errorWriter writes an error the way the handler's client expects it.
type errorWriter func(w http.ResponseWriter, r *http.Request, status int, msg, hint string)

// Require wraps next so it runs only for authenticated requests, with the
// identity in the request context. API requests without credentials get
// 401; page requests are sent through the hub's OAuth login.
func (a *Auth) Require(next http.Handler, fail errorWriter, pages bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, status, msg := a.identify(r)
		if id == nil {
			if status == http.StatusUnauthorized && pages && a.OAuth != nil && r.Method == http.MethodGet {
				a.startLogin(w, r)
				return
			}
			hint := ""
			if status == http.StatusUnauthorized {
				hint = "send a JupyterHub API token: Authorization: token <token> (JUPYTERHUB_API_TOKEN or LTIGRADE_TOKEN)"
			}
			fail(w, r, status, msg, hint)
			return
		}
		auth := "token"
		if id.Cookie {
			auth = "cookie"
		}
		noteIdentity(r.Context(), id.User.Name, auth)
		if id.Cookie && !safeMethod(r.Method) && !a.csrfOK(r, id) {
			fail(w, r, http.StatusForbidden, "missing or wrong CSRF token for a cookie-authenticated request", "")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// identify returns the identity, or why there is none (status and message).
func (a *Auth) identify(r *http.Request) (*Identity, int, string) {
	token, cookie, csrf := hubapi.BearerToken(r.Header), false, ""
	if token == "" {
		if c, err := r.Cookie(sessionCookie); err == nil {
			if s := a.session(c.Value); s != nil {
				token, cookie, csrf = s.token, true, s.csrf
			}
		}
	}
	if token == "" {
		return nil, http.StatusUnauthorized, "authentication required"
	}
	u, err := a.Hub.User(r.Context(), token)
	switch {
	case errors.Is(err, hubapi.ErrUnauthorized):
		if cookie {
			a.dropSession(r)
		}
		return nil, http.StatusUnauthorized, "the hub does not accept this token"
	case err != nil:
		return nil, http.StatusBadGateway, "cannot check the token with the hub: " + err.Error()
	case !hasAccess(u.Scopes, a.Service):
		return nil, http.StatusForbidden, "this token does not carry the scope " + accessScope(a.Service) +
			" (ask the hub admin for a role with it)"
	}
	return &Identity{User: u, Role: a.Policy.RoleOf(u), Cookie: cookie, CSRF: csrf}, 0, ""
}

func (a *Auth) csrfOK(r *http.Request, id *Identity) bool {
	// A browser tells us where a request came from; a cross-site one is
	// refused whatever it carries.
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" {
		return false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("_csrf")
	}
	return id.CSRF != "" && subtle.ConstantTimeCompare([]byte(got), []byte(id.CSRF)) == 1
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (a *Auth) session(id string) *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[id]
	if s == nil {
		return nil
	}
	if !a.now().Before(s.expires) {
		delete(a.sessions, id)
		return nil
	}
	return s
}

func (a *Auth) dropSession(r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
}

func (a *Auth) newSession(token string) (id string, s *session) {
	ttl := a.SessionTTL
	if ttl <= 0 {
		ttl = 8 * time.Hour
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions == nil {
		a.sessions = map[string]*session{}
	}
	now := a.now()
	if len(a.sessions) >= maxSessions {
		for k, v := range a.sessions {
			if !now.Before(v.expires) {
				delete(a.sessions, k)
			}
		}
		if len(a.sessions) >= maxSessions {
			a.sessions = map[string]*session{}
		}
	}
	id = randomToken()
	s = &session{token: token, csrf: randomToken(), expires: now.Add(ttl)}
	a.sessions[id] = s
	return id, s
}

// startLogin sends the browser to the hub's OAuth authorize endpoint,
// remembering where it wanted to go in a state cookie.
func (a *Auth) startLogin(w http.ResponseWriter, r *http.Request) {
	state := randomToken()
	next := r.URL.RequestURI()
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: state + "|" + url.QueryEscape(next), Path: a.Prefix,
		MaxAge: 600, HttpOnly: true, Secure: a.SecureCookies, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, a.OAuth.AuthCodeURL(state), http.StatusFound)
}

// Callback finishes the OAuth login: it checks the state, trades the code
// for a hub token, and starts a session.
func (a *Auth) Callback(fail errorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.OAuth == nil {
			fail(w, r, http.StatusNotFound, "browser login is not configured", "")
			return
		}
		c, err := r.Cookie(stateCookie)
		state, nextEsc, _ := strings.Cut(func() string {
			if err != nil {
				return ""
			}
			return c.Value
		}(), "|")
		got := r.URL.Query().Get("state")
		if state == "" || subtle.ConstantTimeCompare([]byte(got), []byte(state)) != 1 {
			fail(w, r, http.StatusBadRequest, "OAuth state does not match; start the login again", "")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: a.Prefix, MaxAge: -1})
		code := r.URL.Query().Get("code")
		if code == "" {
			fail(w, r, http.StatusBadRequest, "no OAuth code in the callback", "")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		tok, err := a.OAuth.Exchange(ctx, code)
		if err != nil {
			// The oauth2 error may quote the hub's reply; it never holds our
			// client secret, but keep the message short and generic.
			fail(w, r, http.StatusBadGateway, "the hub refused the OAuth code", "")
			return
		}
		u, err := a.Hub.User(ctx, tok.AccessToken)
		if err != nil || !hasAccess(u.Scopes, a.Service) {
			fail(w, r, http.StatusForbidden, "the hub's token for this login cannot reach the service "+accessScope(a.Service), "")
			return
		}
		id, _ := a.newSession(tok.AccessToken)
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: a.Prefix, HttpOnly: true,
			Secure: a.SecureCookies, SameSite: http.SameSiteLaxMode})
		next, _ := url.QueryUnescape(nextEsc)
		if !strings.HasPrefix(next, a.Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
			next = a.Prefix // only ever back into the service: no open redirect
		}
		http.Redirect(w, r, next, http.StatusFound)
	})
}

// Logout ends the browser session.
func (a *Auth) Logout(w http.ResponseWriter, r *http.Request) {
	a.dropSession(r)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: a.Prefix, MaxAge: -1})
}
