package ags

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
)

// ListLineItems lists every line item of a container (no filter).
func (c *Client) ListLineItems(ctx context.Context, p Platform, lineitems string) ([]LineItem, error) {
	return c.LineItems(ctx, p, lineitems, "")
}

// CreateLineItem POSTs a new line item (a gradebook column) to the
// container; it needs the lineitem scope. Callers that want "create once"
// list first and reuse a line item with the same resourceId.
func (c *Client) CreateLineItem(ctx context.Context, p Platform, lineitems string, li LineItem) (*LineItem, error) {
	if c == nil {
		c = &Client{}
	}
	u, err := parseServiceURL(lineitems, "line item container")
	if err != nil {
		return nil, &Error{Status: Rejected, Message: err.Error()}
	}
	if strings.TrimSpace(li.Label) == "" || li.ScoreMaximum <= 0 || math.IsNaN(li.ScoreMaximum) || math.IsInf(li.ScoreMaximum, 0) {
		return nil, &Error{Status: Rejected, Message: "a line item needs a label and a positive scoreMaximum"}
	}
	// Without an id: the platform assigns it, and some (the spec's
	// reference platform, the sandbox) refuse a request that names one,
	// even empty.
	body, err := json.Marshal(struct {
		Label          string  `json:"label"`
		ScoreMaximum   float64 `json:"scoreMaximum"`
		ResourceLinkID string  `json:"resourceLinkId,omitempty"`
		ResourceID     string  `json:"resourceId,omitempty"`
		Tag            string  `json:"tag,omitempty"`
	}{li.Label, li.ScoreMaximum, li.ResourceLinkID, li.ResourceID, li.Tag})
	if err != nil {
		return nil, &Error{Status: Rejected, Message: err.Error()}
	}
	red := &redactor{}
	for attempt := 0; ; attempt++ {
		tok, fetched, err := c.token(ctx, p, []string{ScopeLineItem}, "")
		if err != nil {
			return nil, err
		}
		red.add(tok.AccessToken)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
		if err != nil {
			return nil, &Error{Status: Rejected, Message: red.clean(describeErr(err))}
		}
		req.Header.Set("Content-Type", LineItemMediaType)
		req.Header.Set("Accept", LineItemMediaType)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := c.httpClient().Do(req)
		if err != nil {
			return nil, &Error{Status: Retry, Message: red.clean("request failed: " + describeErr(err))}
		}
		data, tooBig, rerr := c.readBody(resp.Body)
		resp.Body.Close()
		code := resp.StatusCode
		// A refused cached token (expired early, or a rotated key: edX says
		// 403) is renewed once; a fresh token that is refused stays refused.
		if attempt == 0 && (code == http.StatusUnauthorized || code == http.StatusForbidden && !fetched) {
			if _, _, err := c.token(ctx, p, []string{ScopeLineItem}, tok.AccessToken); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case rerr != nil || tooBig:
			return nil, &Error{Status: Retry, HTTPStatus: code, Message: red.clean(fmt.Sprintf("HTTP %d, unreadable answer", code))}
		case code != http.StatusOK && code != http.StatusCreated:
			st := Rejected
			if transientStatus(code) {
				st = Retry
			}
			m := fmt.Sprintf("platform refused the line item (HTTP %d)", code)
			if t := sanitize(bodyText(data)); t != "" {
				m += ": " + t
			}
			return nil, &Error{Status: st, HTTPStatus: code, Message: red.clean(m)}
		}
		var got LineItem
		if err := json.Unmarshal(data, &got); err != nil || got.ID == "" {
			return nil, &Error{Status: Rejected, HTTPStatus: code, Message: "the platform's answer names no line item id"}
		}
		return &got, nil
	}
}
