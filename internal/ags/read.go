package ags

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Result is one entry of a line item's result container.
type Result struct {
	ID            string   `json:"id,omitempty"`
	ScoreOf       string   `json:"scoreOf,omitempty"`
	UserID        string   `json:"userId"`
	ResultScore   *float64 `json:"resultScore,omitempty"`
	ResultMaximum *float64 `json:"resultMaximum,omitempty"`
	Comment       string   `json:"comment,omitempty"`
}

// LineItem is one entry of a line item container.
type LineItem struct {
	ID             string  `json:"id"`
	Label          string  `json:"label,omitempty"`
	ScoreMaximum   float64 `json:"scoreMaximum,omitempty"`
	ResourceLinkID string  `json:"resourceLinkId,omitempty"`
	ResourceID     string  `json:"resourceId,omitempty"`
	Tag            string  `json:"tag,omitempty"`
}

// Errors of FindLineItem, matched with errors.Is on a *LineItemError.
var (
	ErrNoLineItem        = errors.New("no line item for the resource link")
	ErrAmbiguousLineItem = errors.New("several line items for the resource link")
)

// LineItemError says FindLineItem found no line item, or several.
type LineItemError struct {
	ResourceLinkID string
	Matches        []string // the line item URLs that matched (empty: none)
}

func (e *LineItemError) Error() string {
	if len(e.Matches) == 0 {
		return fmt.Sprintf("no line item for resource link %q", e.ResourceLinkID)
	}
	return fmt.Sprintf("%d line items for resource link %q; pick one with the lineitem url", len(e.Matches), e.ResourceLinkID)
}

// Is makes errors.Is match ErrNoLineItem or ErrAmbiguousLineItem.
func (e *LineItemError) Is(target error) bool {
	if len(e.Matches) == 0 {
		return target == ErrNoLineItem
	}
	return target == ErrAmbiguousLineItem
}

// Results reads the line item's results: GET {lineitem}/results?user_id=
// (every user when userID is ""), following rel="next" Link headers.
// Errors are *Error.
func (c *Client) Results(ctx context.Context, p Platform, lineitem, userID string) ([]Result, error) {
	if c == nil {
		c = &Client{}
	}
	ru, err := ResultsURL(lineitem)
	if err != nil {
		return nil, &Error{Status: Rejected, Message: err.Error()}
	}
	if userID != "" {
		ru = addQuery(ru, "user_id", userID)
	}
	var out []Result
	err = c.getPaged(ctx, p, ScopeResultReadOnly, ru, ResultContainerMediaType, func(data []byte) error {
		var page []Result
		if err := json.Unmarshal(data, &page); err != nil {
			return errors.New("result container is not a JSON array of results")
		}
		for _, r := range page {
			// Filter here too, in case a platform ignores user_id.
			if userID == "" || r.UserID == userID {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// LineItems lists the line item container (GET lineitems, with
// resource_link_id as a filter when given), following rel="next" links.
func (c *Client) LineItems(ctx context.Context, p Platform, lineitems, resourceLinkID string) ([]LineItem, error) {
	if c == nil {
		c = &Client{}
	}
	u, err := parseServiceURL(lineitems, "line items")
	if err != nil {
		return nil, &Error{Status: Rejected, Message: err.Error()}
	}
	first := u.String()
	if resourceLinkID != "" {
		first = addQuery(first, "resource_link_id", resourceLinkID)
	}
	var out []LineItem
	err = c.getPaged(ctx, p, ScopeLineItemReadOnly, first, LineItemContainerMediaType, func(data []byte) error {
		var page []LineItem
		if err := json.Unmarshal(data, &page); err != nil {
			return errors.New("line item container is not a JSON array of line items")
		}
		out = append(out, page...)
		return nil
	})
	return out, err
}

// FindLineItem returns the URL of the one line item whose resourceLinkId
// is resourceLinkID, for launches whose AGS claim has lineitems but no
// lineitem. None: a *LineItemError matching ErrNoLineItem; several: one
// matching ErrAmbiguousLineItem. Request failures are *Error.
func (c *Client) FindLineItem(ctx context.Context, p Platform, lineitems, resourceLinkID string) (string, error) {
	if resourceLinkID == "" {
		return "", &Error{Status: Rejected, Message: "no resource link id to look up"}
	}
	items, err := c.LineItems(ctx, p, lineitems, resourceLinkID)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, it := range items {
		if it.ResourceLinkID == resourceLinkID && it.ID != "" && !contains(ids, it.ID) {
			ids = append(ids, it.ID)
		}
	}
	if len(ids) != 1 {
		return "", &LineItemError{ResourceLinkID: resourceLinkID, Matches: ids}
	}
	return ids[0], nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func addQuery(raw, k, v string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// getPaged GETs first and every rel="next" page after it, at most MaxPages,
// handing each body to page. Next links must stay on the first page's
// scheme and host: the bearer token goes with every page. A 401, or a 403
// to a cached token (edX's answer to a token it no longer accepts), drops
// the token and, these being safe reads, the page is requested once more
// with a fresh one.
func (c *Client) getPaged(ctx context.Context, p Platform, scope, first, accept string, page func([]byte) error) error {
	red := &redactor{}
	fail := func(st Status, code int, msg string) error {
		return &Error{Status: st, HTTPStatus: code, Message: red.clean(msg)}
	}
	origin, err := url.Parse(first)
	if err != nil {
		return fail(Rejected, 0, "invalid url")
	}
	maxPages := c.MaxPages
	if maxPages <= 0 {
		maxPages = DefaultMaxPages
	}
	seen := map[string]bool{}
	next := first
	scopes := []string{scope}
	for n := 0; next != ""; n++ {
		if n >= maxPages {
			return fail(Rejected, 0, fmt.Sprintf("more than %d pages; giving up", maxPages))
		}
		if seen[next] {
			return fail(Rejected, 0, "paging loops back to a page already read")
		}
		seen[next] = true
		var resp *http.Response
		var data []byte
		var text string
		for attempt := 0; ; attempt++ {
			tok, fetched, err := c.token(ctx, p, scopes, "")
			if err != nil {
				return err
			}
			red.add(tok.AccessToken)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
			if err != nil {
				return fail(Rejected, 0, "cannot build request: "+describeErr(err))
			}
			req.Header.Set("Accept", accept)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err = c.httpClient().Do(req)
			if err != nil {
				return fail(Retry, 0, "request failed: "+describeErr(err))
			}
			var tooBig bool
			data, tooBig, err = c.readBody(resp.Body)
			resp.Body.Close()
			code := resp.StatusCode
			switch {
			case err != nil:
				return fail(Retry, code, fmt.Sprintf("HTTP %d, reading response failed: %s", code, describeErr(err)))
			case tooBig && code == http.StatusOK:
				return fail(Rejected, code, fmt.Sprintf("response larger than %d KiB", c.maxBody()>>10))
			}
			if attempt == 0 && (code == http.StatusUnauthorized || (code == http.StatusForbidden && !fetched)) {
				if _, _, err := c.token(ctx, p, scopes, tok.AccessToken); err != nil {
					return err
				}
				continue
			}
			if code != http.StatusOK {
				text = bodyText(data)
				if tooBig {
					text = "oversized response body"
				} else if sanitize(text) == "" {
					text = reasonPhrase(resp)
				}
			}
			break
		}
		code := resp.StatusCode
		if code != http.StatusOK {
			e := &Error{HTTPStatus: code, RetryAfter: retryAfter(resp.Header, c.now())}
			what := "refused"
			switch {
			case transientStatus(code), code == http.StatusUnauthorized:
				e.Status, what = Retry, "temporarily unavailable"
			case code >= 300 && code < 400:
				e.Status, what, e.RetryAfter = Rejected, "redirected; fix the url", 0
			case code >= 400 && code < 500:
				e.Status, e.RetryAfter = Rejected, 0
			default:
				e.Status, what = Retry, "unexpected answer"
			}
			m := fmt.Sprintf("platform %s (HTTP %d)", what, code)
			if t := sanitize(text); t != "" {
				m += ": " + t
			}
			e.Message = red.clean(m)
			return e
		}
		if err := page(data); err != nil {
			return fail(Rejected, code, err.Error())
		}
		next = ""
		if link := nextLink(resp.Header); link != "" {
			cur, _ := url.Parse(resp.Request.URL.String())
			nu, err := cur.Parse(link)
			if err != nil {
				return fail(Rejected, code, "invalid next page link")
			}
			if !strings.EqualFold(nu.Scheme, origin.Scheme) || !strings.EqualFold(nu.Host, origin.Host) {
				return fail(Rejected, code, "next page link points to another host; not following it")
			}
			nu.Fragment, nu.RawFragment = "", ""
			next = nu.String()
		}
	}
	return nil
}

// nextLink returns the target of the rel="next" link among the Link
// headers (RFC 8288), or "". Header names are case-insensitive in
// net/http; rel values are compared case-insensitively too.
func nextLink(h http.Header) string {
	for _, v := range h.Values("Link") {
		for _, part := range splitLinks(v) {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.Index(part, ">")
			if end < 0 {
				continue
			}
			target := part[1:end]
			for _, param := range strings.Split(part[end+1:], ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// splitLinks splits a Link header value at the commas between links, not
// those inside <...> or quotes.
func splitLinks(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case '"':
			if depth == 0 {
				quoted = !quoted
			}
		case ',':
			if depth == 0 && !quoted {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}
