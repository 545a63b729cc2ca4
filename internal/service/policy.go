package service

import (
	"fmt"
	"strings"

	"github.com/ltigrade/ltigrade/internal/hubapi"
)

// Policy is who may do what, default deny: hub admins and the configured
// graders ("group:NAME", "user:NAME") see everything and score anyone;
// every other hub user sees only their own sessions and passbacks and
// cannot score, not even themselves (a student who could post their own
// grade would).
type Policy struct {
	graderUsers  map[string]bool
	graderGroups map[string]bool
}

// NewPolicy reads the [service] graders entries.
func NewPolicy(graders []string) (*Policy, error) {
	p := &Policy{graderUsers: map[string]bool{}, graderGroups: map[string]bool{}}
	for _, g := range graders {
		kind, name, ok := strings.Cut(strings.TrimSpace(g), ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("service.graders: %q: want group:NAME or user:NAME", g)
		}
		switch kind {
		case "group":
			p.graderGroups[name] = true
		case "user":
			p.graderUsers[strings.ToLower(name)] = true
		default:
			return nil, fmt.Errorf("service.graders: %q: want group:NAME or user:NAME", g)
		}
	}
	return p, nil
}

// Role is what a hub user is to ltigrade.
type Role string

// Roles, from most to least.
const (
	RoleAdmin   Role = "admin"
	RoleGrader  Role = "grader"
	RoleStudent Role = "student" // any other hub user: their own data, read-only
)

// RoleOf places a hub user.
func (p *Policy) RoleOf(u *hubapi.User) Role {
	switch {
	case u == nil:
		return ""
	case u.Admin:
		return RoleAdmin
	case u.Kind == "service":
		// A service token speaks for no user; only an explicit user: entry
		// would make it a grader, and services are not named that way.
		return RoleStudent
	case p.graderUsers[strings.ToLower(u.Name)]:
		return RoleGrader
	}
	for _, g := range u.Groups {
		if p.graderGroups[g] {
			return RoleGrader
		}
	}
	return RoleStudent
}

// CanGrade: score, batch, sync, retry, see every user.
func (r Role) CanGrade() bool { return r == RoleAdmin || r == RoleGrader }

// accessScope is the scope JupyterHub expects a token to carry to reach a
// service (its own HubAuth checks the same).
func accessScope(service string) string { return "access:services!service=" + service }

// hasAccess reports whether a token's scopes reach the service.
func hasAccess(scopes []string, service string) bool {
	want := accessScope(service)
	for _, s := range scopes {
		if s == want || s == "access:services" {
			return true
		}
	}
	return false
}
