package lmssim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
)

// do sends a request with a bearer token for scope and returns the status,
// headers and body.
func do(t *testing.T, plat ags.Platform, method, u, ctype, body string, scope ...string) (int, http.Header, string) {
	t.Helper()
	tok, err := (&ags.Client{}).Token(context.Background(), plat, scope...)
	if err != nil {
		t.Fatalf("token for %v: %v", scope, err)
	}
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestLineItemCreate(t *testing.T) {
	p, plat := startPlatform(t)
	p.AddLineItem("1", "rl-1")
	const liType = "application/vnd.ims.lis.v2.lineitem+json"
	code, hdr, body := do(t, plat, "POST", p.LineItemsURL(), liType,
		`{"label":"Project","scoreMaximum":50,"resourceId":"project-1","tag":"grade"}`, ags.ScopeLineItem)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	var got lineItemJSON
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != p.LineItemURL("2") || got.Label != "Project" || got.ScoreMaximum != 50 || got.ResourceID != "project-1" ||
		got.Tag != "grade" || hdr.Get("Location") != got.ID || hdr.Get("Content-Type") != liType {
		t.Fatalf("created %+v (headers %v)", got, hdr)
	}
	// It is listed, and found by resource id and tag.
	items, err := (&ags.Client{}).LineItems(context.Background(), plat, p.LineItemsURL(), "")
	if err != nil || len(items) != 2 {
		t.Fatalf("list after create: %+v %v", items, err)
	}
	code, _, body = do(t, plat, "GET", p.LineItemsURL()+"?resource_id=project-1&tag=grade", "", "", ags.ScopeLineItemReadOnly)
	var found []lineItemJSON
	if json.Unmarshal([]byte(body), &found); code != 200 || len(found) != 1 || found[0].ID != got.ID {
		t.Fatalf("filter by resource_id: %d %s", code, body)
	}
	// Scores go to it like to any line item.
	if o := (&ags.Client{}).PostScore(context.Background(), plat, got.ID, ags.Score{UserID: "u", ScoreGiven: 40, ScoreMaximum: 50, Timestamp: time.Now()}); o.Status != ags.Sent {
		t.Fatalf("score to the created line item: %+v (%s)", o, p.LastError())
	}
	for _, c := range []struct {
		name, ctype, body string
		scope             string
		want              int
	}{
		{"read-only token", liType, `{"label":"x","scoreMaximum":1}`, ags.ScopeLineItemReadOnly, http.StatusForbidden},
		{"no label", liType, `{"scoreMaximum":1}`, ags.ScopeLineItem, http.StatusBadRequest},
		{"no maximum", liType, `{"label":"x"}`, ags.ScopeLineItem, http.StatusBadRequest},
		{"an id of its own", liType, `{"id":"x","label":"x","scoreMaximum":1}`, ags.ScopeLineItem, http.StatusBadRequest},
		{"plain JSON", "application/json", `{"label":"x","scoreMaximum":1}`, ags.ScopeLineItem, http.StatusUnsupportedMediaType},
	} {
		if code, _, body := do(t, plat, "POST", p.LineItemsURL(), c.ctype, c.body, c.scope); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.want)
		}
	}
	if st := p.Stats(); st.LineItemsCreated != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestMembershipsPaging(t *testing.T) {
	p, plat := startPlatform(t)
	roster := SyntheticRoster(25)
	roster = append(roster, Member{UserID: "t-1", Name: "Tess", Email: "tess@" + EmailDomain, Roles: []string{RoleURI("Instructor")}})
	p.SetMembers("c-1", roster)
	u := p.MembershipsURL("c-1")
	type container struct {
		ID      string            `json:"id"`
		Context map[string]string `json:"context"`
		Members []Member          `json:"members"`
	}
	var all []Member
	pages := 0
	for next := u; next != ""; pages++ {
		code, hdr, body := do(t, plat, "GET", next, "", "", NRPSScopeMembership)
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/vnd.ims.lti-nrps.v2.membershipcontainer+json") {
			t.Fatalf("page %d: %d %s", pages, code, body)
		}
		var c container
		if err := json.Unmarshal([]byte(body), &c); err != nil || c.Context["id"] != "c-1" {
			t.Fatalf("page %d: %v %s", pages, err, body)
		}
		all = append(all, c.Members...)
		next = ""
		if l := hdr.Get("Link"); l != "" {
			if !strings.HasSuffix(l, `>; rel="next"`) {
				t.Fatalf("Link %q", l)
			}
			next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
	}
	if pages != 3 || len(all) != 26 || all[0].UserID != "lms-0001" || all[25].UserID != "t-1" {
		t.Fatalf("%d pages, %d members (first %+v)", pages, len(all), all[0])
	}
	if all[9].Status != "Inactive" || all[0].Status != "Active" || all[0].Email != "s0001@"+EmailDomain || all[25].Status != "Active" {
		t.Errorf("members %+v %+v %+v", all[0], all[9], all[25])
	}
	// ?role= (short or full) and ?limit=
	code, hdr, body := do(t, plat, "GET", u+"?role=Instructor", "", "", NRPSScopeMembership)
	var c container
	if json.Unmarshal([]byte(body), &c); code != 200 || len(c.Members) != 1 || c.Members[0].Name != "Tess" || hdr.Get("Link") != "" {
		t.Errorf("role filter: %d %s", code, body)
	}
	code, hdr, body = do(t, plat, "GET", u+"?limit=4", "", "", NRPSScopeMembership)
	if json.Unmarshal([]byte(body), &c); code != 200 || len(c.Members) != 4 || !strings.Contains(hdr.Get("Link"), "limit=4") {
		t.Errorf("limit: %d %s (Link %q)", code, body, hdr.Get("Link"))
	}
	// The scope is needed, and the context must exist.
	if code, _, _ := do(t, plat, "GET", u, "", "", ags.ScopeScore); code != http.StatusForbidden {
		t.Errorf("score token on memberships: %d", code)
	}
	if code, _, _ := do(t, plat, "GET", p.MembershipsURL("nope"), "", "", NRPSScopeMembership); code != http.StatusNotFound {
		t.Errorf("unknown context: %d", code)
	}
	if st := p.Stats(); st.MembershipRequests != 7 {
		t.Errorf("stats %+v", st)
	}
}

// The course's roster is its students unless the test loads another.
func TestSetCourseRosterAndLineItems(t *testing.T) {
	p := startCoursePlatform(t)
	ms := p.Members("ds-100")
	if len(ms) != 3 || ms[1].UserID != "lms-user-17" || ms[1].Name != "Bob <b>Builder</b>" || ms[2].Roles[0] != RoleURI("Instructor") {
		t.Fatalf("roster %+v", ms)
	}
	for _, a := range []string{"hw1", "hw2"} {
		if id, ok := p.LineItemFor(a); !ok || id != a {
			t.Errorf("line item of %s: %q %v", a, id, ok)
		}
	}
	p2, _ := startPlatform(t)
	p2.AddLineItem("hw1", "elsewhere") // the id is taken by another link
	p2.SetMembers("ds-100", SyntheticRoster(3))
	if err := p2.SetCourse(LaunchBuilder{HubURL: testHub, Course: course13()}); err != nil {
		t.Fatal(err)
	}
	if id, _ := p2.LineItemFor("hw1"); id == "hw1" || id == "" {
		t.Errorf("hw1's line item %q, want a new one", id)
	}
	if ms := p2.Members("ds-100"); len(ms) != 3 || ms[0].UserID != "lms-0001" {
		t.Errorf("a loaded roster was replaced: %+v", ms)
	}
	if n := len(SyntheticRoster(1000)); n != 1000 {
		t.Errorf("SyntheticRoster(1000) has %d members", n)
	}
}
