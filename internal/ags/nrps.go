package ags

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
)

// LTI Advantage Names and Role Provisioning Services (NRPS 2.0): the
// course's members, for `ltigrade roster` and for scores of students who
// never launched an assignment.
const (
	ScopeMembershipReadOnly = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
	// MembershipMediaType is the NRPS membership container.
	MembershipMediaType = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
	// ClaimNRPS is the launch claim naming the service.
	ClaimNRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
)

// Member is one course member as NRPS gives it.
type Member struct {
	UserID     string   `json:"user_id"`
	Status     string   `json:"status,omitempty"` // Active, Inactive, Deleted; "" means Active
	Name       string   `json:"name,omitempty"`
	GivenName  string   `json:"given_name,omitempty"`
	FamilyName string   `json:"family_name,omitempty"`
	Email      string   `json:"email,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	// LISPersonSourcedID is the SIS id some platforms add.
	LISPersonSourcedID string `json:"lis_person_sourcedid,omitempty"`
}

// Active reports whether the member is active (NRPS: no status = Active).
func (m Member) Active() bool { return m.Status == "" || strings.EqualFold(m.Status, "Active") }

// Learner reports whether one of the member's roles is a learner role
// (full URI or short name).
func (m Member) Learner() bool {
	for _, r := range m.Roles {
		if strings.HasSuffix(r, "#Learner") || strings.EqualFold(r, "Learner") || strings.HasSuffix(r, "/Learner") {
			return true
		}
	}
	return false
}

// Members reads the whole membership of a context from its
// context_memberships_url, following rel="next" pages. Errors are *Error.
func (c *Client) Members(ctx context.Context, p Platform, membershipsURL string) ([]Member, error) {
	if c == nil {
		c = &Client{}
	}
	if _, err := parseServiceURL(membershipsURL, "memberships"); err != nil {
		return nil, &Error{Status: Rejected, Message: err.Error()}
	}
	var out []Member
	err := c.getPaged(ctx, p, ScopeMembershipReadOnly, membershipsURL, MembershipMediaType, func(data []byte) error {
		var page struct {
			Members []Member `json:"members"`
		}
		if err := json.Unmarshal(data, &page); err != nil {
			return errors.New("membership container is not a JSON object with members")
		}
		for _, m := range page.Members {
			if strings.TrimSpace(m.UserID) == "" {
				continue
			}
			out = append(out, m)
		}
		if len(out) > MaxMembers {
			return errors.New("more than 100,000 members; giving up")
		}
		return nil
	})
	return out, err
}

// MaxMembers bounds a roster.
const MaxMembers = 100_000
