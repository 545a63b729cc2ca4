package lmssim

// Names and Role Provisioning Services (NRPS 2.0) of Platform: a course's
// roster, paged as Canvas and Moodle page it.

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
)

// Member is one course member as NRPS lists it.
type Member struct {
	UserID     string   `json:"user_id"` // the member's LTI 1.3 sub
	Name       string   `json:"name,omitempty"`
	GivenName  string   `json:"given_name,omitempty"`
	FamilyName string   `json:"family_name,omitempty"`
	Email      string   `json:"email,omitempty"`
	Roles      []string `json:"roles"`            // LIS role URIs
	Status     string   `json:"status,omitempty"` // Active (when empty), Inactive or Deleted
}

// SyntheticRoster makes n learners for load tests: "Student 0001" with
// user_id "lms-0001" and email s0001@EmailDomain, and so on; every tenth
// one Inactive, as a course always has a few who dropped.
func SyntheticRoster(n int) []Member {
	out := make([]Member, 0, n)
	for i := 1; i <= n; i++ {
		m := Member{
			UserID: fmt.Sprintf("lms-%04d", i), Name: fmt.Sprintf("Student %04d", i),
			GivenName: "Student", FamilyName: fmt.Sprintf("%04d", i),
			Email: fmt.Sprintf("s%04d@%s", i, EmailDomain), Roles: []string{RoleURI("Learner")}, Status: "Active",
		}
		if i%10 == 0 {
			m.Status = "Inactive"
		}
		out = append(out, m)
	}
	return out
}

// SetMembers replaces the roster of a context (course id), in the order
// given, which is the order NRPS pages list it in.
func (p *Platform) SetMembers(contextID string, members []Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ms := slices.Clone(members)
	for i := range ms {
		if ms[i].Status == "" {
			ms[i].Status = "Active"
		}
	}
	p.members[contextID] = ms
}

// Members returns the roster of a context.
func (p *Platform) Members(contextID string) []Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.members[contextID])
}

// MembershipsURL is the NRPS context_memberships_url of a context.
func (p *Platform) MembershipsURL(contextID string) string {
	return p.BaseURL() + "/contexts/" + url.PathEscape(contextID) + "/memberships"
}

func (p *Platform) serveMemberships(w http.ResponseWriter, r *http.Request) {
	if !p.bearer(w, r, NRPSScopeMembership) {
		return
	}
	cid := r.PathValue("id")
	p.mu.Lock()
	all, ok := p.members[cid]
	var ctx map[string]string
	if p.course != nil && p.course.Course.ID == cid {
		c := p.course.Course
		ctx = map[string]string{"id": c.ID, "label": or(c.Label, c.ID), "title": or(c.Title, c.ID)}
	}
	p.mu.Unlock()
	if !ok {
		p.fail(w, http.StatusNotFound, "not_found", "no such context")
		return
	}
	if ctx == nil {
		ctx = map[string]string{"id": cid}
	}
	rows := all
	if role := r.URL.Query().Get("role"); role != "" {
		want := RoleURI(role)
		rows = nil
		for _, m := range all {
			if slices.Contains(m.Roles, want) {
				rows = append(rows, m)
			}
		}
	}
	chunk, ok := page(p, w, r, rows)
	if !ok {
		return
	}
	p.reply(w, http.StatusOK, nrpsMembershipType, map[string]any{
		"id": p.kit.baseFor(r) + r.URL.Path, "context": ctx, "members": chunk})
}
