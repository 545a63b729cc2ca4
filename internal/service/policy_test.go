package service

import (
	"testing"

	"github.com/ltigrade/ltigrade/internal/hubapi"
)

func TestPolicyRoles(t *testing.T) {
	p, err := NewPolicy([]string{"group:instructors", "user:TA1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		u    hubapi.User
		want Role
	}{
		{hubapi.User{Name: "root", Admin: true, Kind: "user"}, RoleAdmin},
		{hubapi.User{Name: "ta1", Kind: "user"}, RoleGrader},
		{hubapi.User{Name: "prof", Kind: "user", Groups: []string{"staff", "instructors"}}, RoleGrader},
		{hubapi.User{Name: "alice", Kind: "user", Groups: []string{"students"}}, RoleStudent},
		{hubapi.User{Name: "ta1", Kind: "service"}, RoleStudent},
	} {
		if got := p.RoleOf(&c.u); got != c.want {
			t.Errorf("%+v: %s, want %s", c.u, got, c.want)
		}
	}
	if RoleStudent.CanGrade() || !RoleGrader.CanGrade() || !RoleAdmin.CanGrade() {
		t.Error("CanGrade")
	}
	for _, bad := range []string{"instructors", "group:", "team:x"} {
		if _, err := NewPolicy([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestHasAccess(t *testing.T) {
	if !hasAccess([]string{"read:users:name!user=a", "access:services!service=ltigrade"}, "ltigrade") ||
		!hasAccess([]string{"access:services"}, "ltigrade") ||
		hasAccess([]string{"access:services!service=other"}, "ltigrade") || hasAccess(nil, "ltigrade") {
		t.Error("hasAccess")
	}
}
