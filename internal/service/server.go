// Package service is `ltigrade serve`: the grading use cases (package
// grade) behind JupyterHub's own authentication, so graders on any machine
// score without the database, the spool or any LMS secret, and students see
// where their own grades stand. It runs as a JupyterHub-managed service or
// as an external one (Kubernetes).
//
// Every request is authenticated by the hub (a token, or a browser session
// from the hub's OAuth login) and authorized by Policy, default deny. No
// response ever carries a secret, a private key, a cached token or raw
// auth_state: the use cases' results hold none, and errors are the same
// texts the CLI prints.
package service

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/batch"
	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/hubapi"
	"github.com/ltigrade/ltigrade/internal/keys"
	"github.com/ltigrade/ltigrade/internal/metrics"
	"github.com/ltigrade/ltigrade/internal/store"
)

// MaxBody bounds request bodies: a class's batch is well below.
const MaxBody = 16 << 20

// ExitHeader carries the exit code of a result, so the remote CLI exits as
// the local one would.
const ExitHeader = "Ltigrade-Exit-Code"

// Server answers the JSON API and the status page.
type Server struct {
	Grader *grade.Local
	Auth   *Auth
	Prefix string // ends in "/"
	// JWKS returns the tool's LTI 1.3 public keys.
	JWKS    func() (keys.JWKSet, error)
	Log     *slog.Logger
	Version string
	// Metrics, if set, is served at GET <prefix>metrics and counts every
	// request. MetricsToken, if set, is a bearer token that may read the
	// metrics without a hub account (a Prometheus scraper); hub admins and
	// graders may read them with their hub token.
	Metrics      *metrics.Metrics
	MetricsToken config.Secret
}

// APIError is the body of every failed API request.
type APIError struct {
	Error    string `json:"error"`
	Hint     string `json:"hint,omitempty"`
	ExitCode int    `json:"exit_code"`
}

// Handler routes the service's paths.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	p := s.Prefix
	api := func(h http.HandlerFunc) http.Handler { return s.Auth.Require(h, s.apiError, false) }
	mux.Handle("GET "+p+"api/health", api(s.health))
	mux.Handle("GET "+p+"api/sessions", api(s.sessions))
	mux.Handle("GET "+p+"api/resolve", api(s.resolve))
	mux.Handle("POST "+p+"api/scores", api(s.graders(s.scores)))
	mux.Handle("GET "+p+"api/passbacks", api(s.passbacks))
	mux.Handle("POST "+p+"api/sync", api(s.graders(s.sync)))
	mux.Handle("POST "+p+"api/submissions", api(s.submit))
	mux.Handle("GET "+p+"api/submissions", api(s.submissions))
	mux.Handle("GET "+p+"api/submissions/{id}", api(s.submission))
	mux.HandleFunc("GET "+p+".well-known/jwks.json", s.jwks)
	if s.Metrics != nil {
		mux.Handle("GET "+p+"metrics", s.metricsAuth(s.Metrics.Handler()))
	}
	mux.HandleFunc("GET "+p+"healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("GET "+p+"oauth_callback", s.Auth.Callback(s.pageError))
	mux.HandleFunc("GET "+p+"logout", func(w http.ResponseWriter, r *http.Request) {
		s.Auth.Logout(w, r)
		io.WriteString(w, "logged out\n")
	})
	page := func(h http.HandlerFunc) http.Handler { return s.Auth.Require(h, s.pageError, true) }
	mux.Handle("GET "+p+"{$}", page(s.statusPage))
	mux.Handle("POST "+p+"retry", page(s.graders(s.retry)))
	mux.Handle("POST "+p+"submit", s.limitBody(page(s.submitForm)))
	mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
		s.apiError(w, r, http.StatusNotFound, "no such page: "+r.URL.Path, "")
	})
	return s.logged(securityHeaders(mux))
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// reqInfo is what the handlers learn about a request that its log line
// and metrics need: who the hub said it was, and how it authenticated.
type reqInfo struct {
	user string
	auth string // "token", "cookie", "metrics_token"; "" anonymous
}

type infoKey struct{}

// noteIdentity tells the request's log line who made it.
func noteIdentity(ctx context.Context, user, auth string) {
	if info, ok := ctx.Value(infoKey{}).(*reqInfo); ok {
		info.user, info.auth = user, auth
	}
}

// logged writes one structured line per request and counts it: the
// method, the route pattern (never the path: it may name a notebook or a
// user), the status, the time taken and the hub user. Never a header, a
// body or a query: they may carry tokens.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		d := time.Since(start)
		// The mux fills in the pattern it matched on this very request.
		route := s.route(r.Pattern)
		if s.Metrics != nil {
			s.Metrics.ObserveRequest(r.Method, route, sw.status, d)
		}
		if s.Log != nil {
			attrs := []any{"method", r.Method, "route", route, "status", sw.status,
				"ms", float64(d.Microseconds()) / 1000}
			if info.user != "" {
				attrs = append(attrs, "user", info.user)
			}
			if info.auth != "" {
				attrs = append(attrs, "auth", info.auth)
			}
			s.Log.Info("request", attrs...)
		}
	})
}

// route is the label of a mux pattern: "GET /services/ltigrade/api/scores"
// is "/api/scores", the status page "/", and anything no route matched
// (the catch-all, a wrong method) "unmatched".
func (s *Server) route(pattern string) string {
	_, path, ok := strings.Cut(pattern, " ")
	if !ok {
		path = pattern
	}
	rest, ok := strings.CutPrefix(path, s.Prefix)
	switch {
	case !ok || rest == "":
		return "unmatched"
	case rest == "{$}":
		return "/"
	}
	return "/" + rest
}

// metricsAuth lets through the metrics token or a hub admin's or grader's
// token; anonymous callers get 401 and no data, students 403. The metrics
// say nothing about any one student, but they are the operator's business.
func (s *Server) metricsAuth(next http.Handler) http.Handler {
	viaHub := s.Auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := IdentityOf(r.Context()); id == nil || !id.Role.CanGrade() {
			s.apiError(w, r, http.StatusForbidden, fmt.Sprintf("%s may not read the metrics: only hub admins, service.graders and the metrics token may", userName(id)), "")
			return
		}
		next.ServeHTTP(w, r)
	}), s.apiError, false)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if want := s.MetricsToken.Reveal(); want != "" {
			got := hubapi.BearerToken(r.Header)
			if got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 {
				noteIdentity(r.Context(), "", "metrics_token")
				next.ServeHTTP(w, r)
				return
			}
		}
		viaHub.ServeHTTP(w, r)
	})
}

// graders lets only admins and graders through.
func (s *Server) graders(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := IdentityOf(r.Context())
		if id == nil || !id.Role.CanGrade() {
			s.apiError(w, r, http.StatusForbidden, fmt.Sprintf("%s may not score or sync: only hub admins and service.graders may", userName(id)),
				"ask the hub admin to add you to service.graders (group:NAME or user:NAME)")
			return
		}
		next(w, r)
	}
}

func userName(id *Identity) string {
	if id == nil || id.User == nil {
		return "this user"
	}
	return "user " + strconv.Quote(id.User.Name)
}

func (s *Server) apiError(w http.ResponseWriter, r *http.Request, status int, msg, hint string) {
	code := grade.ExitError
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		code = grade.ExitNotAllowed
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusNotFound, http.StatusMethodNotAllowed:
		code = grade.ExitUsage
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `token realm="jupyterhub"`)
	}
	writeJSON(w, status, code, APIError{Error: msg, Hint: hint, ExitCode: code})
}

// fail answers a use case's error with its exit code.
func (s *Server) fail(w http.ResponseWriter, err error) {
	code, hint := grade.ExitCode(err)
	status := http.StatusInternalServerError
	switch code {
	case grade.ExitUsage:
		status = http.StatusBadRequest
	case grade.ExitNoSession:
		status = http.StatusNotFound
	case grade.ExitAmbiguous:
		status = http.StatusConflict
	case grade.ExitNotAllowed:
		status = http.StatusForbidden
	}
	msg := err.Error()
	if code == grade.ExitError && s.Log != nil {
		s.Log.Error("request failed", "error", msg)
	}
	writeJSON(w, status, code, APIError{Error: msg, Hint: hint, ExitCode: code})
}

func writeJSON(w http.ResponseWriter, status, exit int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(ExitHeader, strconv.Itoa(exit))
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a size-limited JSON body that must be one object.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return grade.Usagef("request body larger than %d MiB", MaxBody>>20)
		}
		return grade.Usagef("invalid JSON body: %v", err)
	}
	if dec.More() {
		return grade.Usagef("invalid JSON body: more than one value")
	}
	return nil
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	id := IdentityOf(r.Context())
	writeJSON(w, http.StatusOK, grade.ExitOK, map[string]string{"status": "ok", "version": s.Version,
		"user": id.User.Name, "role": string(id.Role)})
}

// ownOnly narrows a student's request to their own data: asking for
// someone else's is refused, not silently narrowed, so nobody mistakes an
// empty answer for "no data".
func (s *Server) ownOnly(w http.ResponseWriter, r *http.Request, user *string) bool {
	id := IdentityOf(r.Context())
	if id.Role.CanGrade() {
		return true
	}
	if *user != "" && !strings.EqualFold(strings.TrimSpace(*user), id.User.Name) {
		s.apiError(w, r, http.StatusForbidden, fmt.Sprintf("%s may see only their own sessions and passbacks", userName(id)), "")
		return false
	}
	*user = id.User.Name
	return true
}

func (s *Server) sessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.SessionFilter{Username: q.Get("user"), Course: q.Get("course"), All: q.Get("all") == "true"}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			s.fail(w, grade.Usagef("since %q is not an RFC 3339 time", v))
			return
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, grade.Usagef("limit %q is not a number", v))
			return
		}
		f.Limit = n
	}
	if !s.ownOnly(w, r, &f.Username) {
		return
	}
	list, err := s.Grader.Sessions(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	if list == nil {
		list = []store.Session{}
	}
	writeJSON(w, http.StatusOK, grade.ExitOK, list)
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := grade.ResolveRequest{Notebook: q.Get("notebook"), User: q.Get("user"), Cwd: q.Get("cwd")}
	id := IdentityOf(r.Context())
	if !id.Role.CanGrade() {
		// A student may ask about their own notebooks only, by a path
		// inside their own root.
		if req.User != "" && !strings.EqualFold(strings.TrimSpace(req.User), id.User.Name) {
			s.apiError(w, r, http.StatusForbidden, fmt.Sprintf("%s may resolve only their own notebooks", userName(id)), "")
			return
		}
		req.User, req.Cwd = id.User.Name, ""
	}
	res, err := s.Grader.Resolve(r.Context(), req)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, grade.ExitOK, res)
}

// scoresRequest is one score, or a batch when Rows is set.
type scoresRequest struct {
	grade.ScoreRequest
	Rows        []batch.Row `json:"rows,omitempty"`
	Concurrency int         `json:"concurrency,omitempty"`
}

func (s *Server) scores(w http.ResponseWriter, r *http.Request) {
	var req scoresRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	// The score goes on even if the caller hangs up: it is journaled, and
	// a half-sent batch is only a worse report.
	ctx := context.WithoutCancel(r.Context())
	if req.Rows != nil {
		rep, err := s.Grader.Batch(ctx, grade.BatchRequest{Rows: req.Rows, DryRun: req.DryRun,
			Concurrency: req.Concurrency, Cwd: req.Cwd}, nil)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rep.Code(), rep)
		return
	}
	res, err := s.Grader.Score(ctx, req.ScoreRequest)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res.Code(), res)
}

func (s *Server) passbacks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.PassbackFilter{Username: q.Get("user")}
	for _, v := range q["status"] {
		for _, st := range strings.Split(v, ",") {
			if st = strings.TrimSpace(st); st != "" {
				f.Statuses = append(f.Statuses, st)
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, grade.Usagef("limit %q is not a number", v))
			return
		}
		f.Limit = n
	}
	if !s.ownOnly(w, r, &f.Username) {
		return
	}
	list, err := s.Grader.Passbacks(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	if list == nil {
		list = []store.Passback{}
	}
	writeJSON(w, http.StatusOK, grade.ExitOK, list)
}

func (s *Server) sync(w http.ResponseWriter, r *http.Request) {
	var req grade.SyncRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			s.fail(w, err)
			return
		}
	}
	rep, err := s.Grader.Sync(context.WithoutCancel(r.Context()), req)
	if err != nil {
		s.fail(w, err)
		return
	}
	if s.Log != nil {
		s.Log.Info("sync", "user", IdentityOf(r.Context()).User.Name, "sent", rep.Sent, "rejected", rep.Rejected,
			"retry", rep.Retry, "superseded", rep.Superseded, "still_queued", rep.StillQueued,
			"ingested", rep.Ingested, "spool_failed", rep.SpoolFailed, "ids", len(req.IDs))
	}
	writeJSON(w, http.StatusOK, rep.Code(), rep)
}

// submit journals the caller's own notebook for grading: the user is the
// token's, the path is inside the caller's own root.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	var req grade.SubmitRequest
	lim := s.Grader.Config.Submit.MaxBytes
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, lim*4/3+64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(w, grade.Usagef("the notebook is larger than %d KiB", lim>>10))
			return
		}
		s.fail(w, grade.Usagef("invalid JSON body: %v", err))
		return
	}
	id := IdentityOf(r.Context())
	v, err := s.Grader.Submit(r.Context(), id.User.Name, req)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, grade.ExitOK, v)
}

func (s *Server) submissions(w http.ResponseWriter, r *http.Request) {
	f := store.SubmissionFilter{Username: r.URL.Query().Get("user"), Limit: 200}
	if !s.ownOnly(w, r, &f.Username) {
		return
	}
	list, err := s.Grader.Submissions(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, grade.ExitOK, list)
}

func (s *Server) submission(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || n <= 0 {
		s.fail(w, grade.Usagef("invalid submission id %q", r.PathValue("id")))
		return
	}
	v, err := s.Grader.Submission(r.Context(), n)
	id := IdentityOf(r.Context())
	if err == nil && !id.Role.CanGrade() && v.Username != id.User.Name {
		// Someone else's: as if it did not exist.
		v, err = nil, grade.WithCode(grade.ExitNoSession, fmt.Errorf("no submission %d", n), "")
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v.Code(), v)
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	set := keys.JWKSet{Keys: []keys.JWK{}}
	if s.JWKS != nil {
		var err error
		if set, err = s.JWKS(); err != nil {
			// Say nothing about the key files to an anonymous caller.
			if s.Log != nil {
				s.Log.Error("jwks", "error", err.Error())
			}
			s.apiError(w, r, http.StatusServiceUnavailable, "the tool's public keys are not available", "")
			return
		}
	}
	w.Header().Set("Cache-Control", "max-age=300")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(set)
}
