package grade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/store"
)

// course13 is the one LTI 1.3 course matching filter that has a line item
// container (a launch's AGS lineitems claim).
func (g *Local) course13(ctx context.Context, filter string) (*Course, string, error) {
	courses, sessions, err := g.courses(ctx, filter)
	if err != nil {
		return nil, "", err
	}
	var found []*Course
	var container string
	for _, c := range courses {
		if c.Version != "1.3" {
			continue
		}
		for _, s := range sessions[courseKey(c)] {
			if s.LineItems != "" && s.Origin == "" {
				found = append(found, c)
				container = s.LineItems
				if c.sample == nil {
					cp := s
					c.sample = &cp
				}
				break
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, "", WithCode(ExitNoSession, fmt.Errorf("no LTI 1.3 course %q with a gradebook (AGS lineitems) in the launches", filter),
			"the platform must grant the lineitem scope and a student or instructor must have launched a link of the course")
	case 1:
		return found[0], container, nil
	}
	var names []string
	for _, c := range found {
		names = append(names, c.Name())
	}
	return nil, "", WithCode(ExitAmbiguous, fmt.Errorf("%d courses match %q: %s", len(found), filter, strings.Join(names, ", ")), "name one with --course")
}

// LineItemsReport is a course's gradebook columns.
type LineItemsReport struct {
	Course    Course         `json:"course"`
	Container string         `json:"lineitems"`
	LineItems []ags.LineItem `json:"lineitem_list"`
}

// ListLineItems lists a course's gradebook columns.
func (g *Local) ListLineItems(ctx context.Context, course string) (*LineItemsReport, error) {
	c, container, err := g.course13(ctx, course)
	if err != nil {
		return nil, err
	}
	plat, err := g.Platform(c.sample.Platform, c.sample.ClientID)
	if err != nil {
		return nil, WithCode(ExitUsage, err, "")
	}
	items, err := g.AGSClient(1).ListLineItems(ctx, plat, container)
	if err != nil {
		return nil, agsErr(err)
	}
	g.keepLabels(ctx, items)
	if items == nil {
		items = []ags.LineItem{}
	}
	return &LineItemsReport{Course: *c, Container: container, LineItems: items}, nil
}

// CreateLineItemRequest is a new gradebook column.
type CreateLineItemRequest struct {
	Course     string  `json:"course"`
	Label      string  `json:"label"`
	Max        float64 `json:"score_maximum"`
	ResourceID string  `json:"resource_id"`
	Tag        string  `json:"tag,omitempty"`
}

// CreatedLineItem is the column and whether it was made now.
type CreatedLineItem struct {
	ags.LineItem
	Created bool `json:"created"`
}

// CreateLineItem makes a gradebook column, or reuses the course's column
// with the same resource id (creating twice makes one column).
func (g *Local) CreateLineItem(ctx context.Context, r CreateLineItemRequest) (*CreatedLineItem, error) {
	if strings.TrimSpace(r.ResourceID) == "" || strings.TrimSpace(r.Label) == "" || r.Max <= 0 {
		return nil, Usagef("a column needs --label, --max (positive) and --resource-id")
	}
	c, container, err := g.course13(ctx, r.Course)
	if err != nil {
		return nil, err
	}
	plat, err := g.Platform(c.sample.Platform, c.sample.ClientID)
	if err != nil {
		return nil, WithCode(ExitUsage, err, "")
	}
	cl := g.AGSClient(1)
	items, err := cl.ListLineItems(ctx, plat, container)
	if err != nil {
		return nil, agsErr(err)
	}
	for _, it := range items {
		if it.ResourceID == r.ResourceID {
			return &CreatedLineItem{LineItem: it}, nil
		}
	}
	it, err := cl.CreateLineItem(ctx, plat, container, ags.LineItem{Label: r.Label, ScoreMaximum: r.Max, ResourceID: r.ResourceID, Tag: r.Tag})
	if err != nil {
		return nil, agsErr(err)
	}
	return &CreatedLineItem{LineItem: *it, Created: true}, nil
}

// agsErr maps an AGS client error to an exit code: refused 6, else 5.
func agsErr(err error) error {
	var ae *ags.Error
	if errors.As(err, &ae) {
		code := ExitQueued
		if ae.Status == ags.Rejected {
			code = ExitRejected
		}
		return WithCode(code, err, "")
	}
	return err
}

// lineItemTarget is the session a score for a column goes through: the
// column (a URL, or a resource id looked up in the course's container)
// and the student's roster member, as a roster session keyed by the
// column, covering no notebook (only an explicit --lineitem reaches it).
func (g *Local) lineItemTarget(ctx context.Context, r ScoreRequest) (*store.Session, error) {
	user, err := g.userOf(r)
	if err != nil {
		return nil, err
	}
	c, container, err := g.course13(ctx, r.Course)
	if err != nil {
		return nil, err
	}
	lineitem := r.LineItem
	if lineitem == "" {
		plat, err := g.Platform(c.sample.Platform, c.sample.ClientID)
		if err != nil {
			return nil, WithCode(ExitUsage, err, "")
		}
		items, err := g.AGSClient(1).ListLineItems(ctx, plat, container)
		if err != nil {
			return nil, agsErr(err)
		}
		var hits []string
		for _, it := range items {
			if it.ResourceID == r.ResourceID && it.ID != "" {
				hits = append(hits, it.ID)
			}
		}
		switch len(hits) {
		case 0:
			return nil, WithCode(ExitNoSession, fmt.Errorf("no gradebook column with resource id %q in %s", r.ResourceID, c.Name()),
				"create it with: ltigrade lineitems create --course "+c.Name()+" --resource-id "+r.ResourceID+" --label L --max M")
		case 1:
			lineitem = hits[0]
		default:
			return nil, WithCode(ExitAmbiguous, fmt.Errorf("%d columns with resource id %q in %s: %s", len(hits), r.ResourceID, c.Name(), strings.Join(hits, ", ")), "pass --lineitem URL")
		}
	} else if !inContainer(lineitem, container) {
		return nil, Usagef("line item %s is not in %s's gradebook (%s)", lineitem, c.Name(), container)
	}
	m, why, err := g.rosterMember(ctx, c, user)
	if err != nil {
		return nil, err
	}
	if why != "" {
		return nil, WithCode(ExitNoSession, errors.New(why), "")
	}
	s := c.sample
	auth, _ := json.Marshal(map[string]any{"ltigrade_origin": "roster", "lineitem": lineitem,
		"member": map[string]any{"user_id": m.UserID, "name": m.Name, "email": m.Email}})
	l := &store.Launch{Username: user, Version: "1.3", Platform: s.Platform, ClientID: s.ClientID, DeploymentID: s.DeploymentID,
		LTIUserID: m.UserID, ResourceLinkID: "lineitem:" + lineitem, ResourceLinkTitle: "gradebook column " + lineitem,
		ContextID: s.ContextID, ContextLabel: s.ContextLabel, ContextTitle: s.ContextTitle, Roles: strings.Join(m.Roles, ","),
		LineItem: lineitem, LineItems: container, AGSScopes: s.AGSScopes, NextSigned: true, Origin: "roster",
		LaunchedAt: rosterEpoch, RecordedAt: g.now(), AuthState: auth}
	sess, err := g.Store.RecordLaunch(ctx, l)
	if err != nil {
		return nil, err
	}
	sess.Launch, sess.LaunchID = *l, l.ID
	return sess, nil
}

// userOf is the hub user a score request names: --user, else the user
// whose notebook root holds the (absolute) notebook path.
func (g *Local) userOf(r ScoreRequest) (string, error) {
	if r.User != "" {
		return strings.ToLower(strings.TrimSpace(r.User)), nil
	}
	abs := r.Notebook
	if !strings.HasPrefix(abs, "/") && r.Cwd != "" {
		abs = strings.TrimRight(r.Cwd, "/") + "/" + abs
	}
	ms, err := g.Config.Paths.Layout().Match(abs, func(prefix string) ([]string, error) {
		return g.Store.UsernamesWithPrefix(context.Background(), prefix)
	})
	if err != nil {
		return "", Usagef("%v", err)
	}
	if len(ms) != 1 {
		return "", Usagef("cannot tell whose notebook %s is: pass --user", r.Notebook)
	}
	return ms[0].Username, nil
}

// inContainer reports whether line item URL a is one of container b's: the
// same scheme and host, and a path under the container's (Canvas, Moodle,
// Blackboard, Brightspace and edX all name items container/<id>/...). A
// score must never reach a column of another course through a typed URL.
func inContainer(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil || ua.Host == "" || !strings.EqualFold(ua.Host, ub.Host) || !strings.EqualFold(ua.Scheme, ub.Scheme) {
		return false
	}
	// Decoded paths, so that %2e%2e is a dot-dot segment too.
	base := strings.TrimSuffix(ub.Path, "/") + "/"
	p := ua.Path
	return strings.HasPrefix(p, base) && len(p) > len(base) && !strings.Contains(p, "/../") && !strings.HasSuffix(p, "/..")
}
