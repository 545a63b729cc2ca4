// Package remote is the grading service's client: the same Grader the CLI
// uses locally, over the service's JSON API with the caller's hub token,
// so `ltigrade score` behaves the same (output and exit codes) on a
// grader's laptop as on the hub, with no database or LMS secret there.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/batch"
	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/store"
)

// maxReply bounds what is read of one answer (a batch report of a large
// class is a few MiB).
const maxReply = 64 << 20

// Client talks to one grading service.
type Client struct {
	base  *url.URL // ends in "/"
	token string
	HTTP  *http.Client
}

// New checks the service URL and keeps the token (never printed).
func New(service, token string) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(service))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, grade.Usagef("grading service URL %q must be an http(s) URL, e.g. https://hub.example.edu/services/ltigrade/", service)
	}
	if u.User != nil {
		return nil, grade.Usagef("grading service URL must not carry credentials; the token goes in $LTIGRADE_TOKEN or $JUPYTERHUB_API_TOKEN")
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawQuery, u.Fragment = "", ""
	if token == "" {
		return nil, grade.WithCode(grade.ExitNotAllowed, errors.New("no token for the grading service"),
			"set $LTIGRADE_TOKEN (or $JUPYTERHUB_API_TOKEN, which a hub user's server already has) to a hub API token")
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 15 * time.Minute // a batch answers when it is done
	return &Client{base: u, token: token, HTTP: &http.Client{Transport: t}}, nil
}

var _ grade.Grader = (*Client)(nil)

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u := c.base.ResolveReference(&url.URL{Path: path})
	if q != nil {
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "token "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot reach the grading service at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return fmt.Errorf("grading service: %w", err)
	}
	if len(data) > maxReply {
		return fmt.Errorf("grading service: answer larger than %d MiB", maxReply>>20)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error    string `json:"error"`
			Hint     string `json:"hint"`
			ExitCode *int   `json:"exit_code"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" && e.ExitCode != nil {
			return grade.WithCode(*e.ExitCode, errors.New("grading service: "+e.Error), e.Hint)
		}
		code := grade.ExitError
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			code = grade.ExitNotAllowed
		}
		return grade.WithCode(code, fmt.Errorf("grading service %s answered %s", c.base, resp.Status),
			"is LTIGRADE_URL the service's URL (…/services/ltigrade/)?")
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("grading service: unexpected answer: %w", err)
	}
	return nil
}

// Sessions implements grade.Grader.
func (c *Client) Sessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error) {
	q := url.Values{}
	set(q, "user", f.Username)
	set(q, "course", f.Course)
	if f.All {
		q.Set("all", "true")
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []store.Session
	return out, c.do(ctx, http.MethodGet, "api/sessions", q, nil, &out)
}

// Resolve implements grade.Grader.
func (c *Client) Resolve(ctx context.Context, r grade.ResolveRequest) (*resolve.Result, error) {
	q := url.Values{}
	set(q, "notebook", r.Notebook)
	set(q, "user", r.User)
	set(q, "cwd", r.Cwd)
	var out resolve.Result
	if err := c.do(ctx, http.MethodGet, "api/resolve", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Score implements grade.Grader.
func (c *Client) Score(ctx context.Context, r grade.ScoreRequest) (*grade.ScoreResult, error) {
	var out grade.ScoreResult
	if err := c.do(ctx, http.MethodPost, "api/scores", nil, r, &out); err != nil {
		return nil, err
	}
	if out.Passback == nil {
		return nil, errors.New("grading service: answer without a passback")
	}
	return &out, nil
}

// Batch implements grade.Grader; progress is not reported remotely.
func (c *Client) Batch(ctx context.Context, r grade.BatchRequest, _ func(string)) (*grade.BatchReport, error) {
	if r.Rows == nil {
		r.Rows = []batch.Row{} // "rows": [] tells the service it is a batch
	}
	var out grade.BatchReport
	if err := c.do(ctx, http.MethodPost, "api/scores", nil, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Passbacks implements grade.Grader.
func (c *Client) Passbacks(ctx context.Context, f store.PassbackFilter) ([]store.Passback, error) {
	q := url.Values{}
	set(q, "user", f.Username)
	if len(f.Statuses) > 0 {
		q.Set("status", strings.Join(f.Statuses, ","))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []store.Passback
	return out, c.do(ctx, http.MethodGet, "api/passbacks", q, nil, &out)
}

// Sync implements grade.Grader.
func (c *Client) Sync(ctx context.Context, r grade.SyncRequest) (*grade.SyncReport, error) {
	var out grade.SyncReport
	if err := c.do(ctx, http.MethodPost, "api/sync", nil, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func set(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

// Submit sends a notebook of the token's user for server-side grading.
func (c *Client) Submit(ctx context.Context, r grade.SubmitRequest) (*grade.SubmissionView, error) {
	var out grade.SubmissionView
	if err := c.do(ctx, http.MethodPost, "api/submissions", nil, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Submission is one submission's state.
func (c *Client) Submission(ctx context.Context, id int64) (*grade.SubmissionView, error) {
	var out grade.SubmissionView
	if err := c.do(ctx, http.MethodGet, "api/submissions/"+strconv.FormatInt(id, 10), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
