package grade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ltigrade/ltigrade/internal/ags"
	"github.com/ltigrade/ltigrade/internal/resolve"
	"github.com/ltigrade/ltigrade/internal/store"
)

// Courses are the (platform, context) pairs ltigrade has launches of.
type Course struct {
	Platform  string `json:"platform"`
	ContextID string `json:"course_id"`
	Label     string `json:"course_label,omitempty"`
	Title     string `json:"course,omitempty"`
	Version   string `json:"lti_version"`
	// one launch of the course that names its services
	sample *store.Session
}

// Name is how messages name the course.
func (c *Course) Name() string {
	return firstNonEmpty(c.Label, c.Title, c.ContextID)
}

// RosterMember is one member of a course, mapped to a hub user.
type RosterMember struct {
	HubUser   string   `json:"hub_user"`
	LMSUserID string   `json:"lms_user_id"`
	Name      string   `json:"name,omitempty"`
	Email     string   `json:"email,omitempty"`
	Role      string   `json:"role"`
	Roles     []string `json:"roles,omitempty"`
	Status    string   `json:"status,omitempty"`
	// Launched are the assignments (resource link titles, else ids) the
	// member launched.
	Launched []string `json:"launched"`
	// MappedBy says how HubUser was found: "launch" (the member's own
	// launches) or the platform's username_key ("email", ...).
	MappedBy string `json:"mapped_by,omitempty"`
}

// RosterReport is one course's roster.
type RosterReport struct {
	Course
	// Source is "nrps" (the platform's roster) or "launches" (LTI 1.1,
	// or a platform without NRPS: only who launched is known).
	Source  string         `json:"source"`
	Note    string         `json:"note,omitempty"`
	Members []RosterMember `json:"members"`
	// Assignments are the course's assignments ltigrade knows of.
	Assignments []string `json:"assignments"`
}

// RosterRequest narrows a roster: Course matches a context id, label or
// title; Assignment a resource link id or title; Missing keeps the learners
// who never launched (it, with Assignment).
type RosterRequest struct {
	Course     string `json:"course,omitempty"`
	Assignment string `json:"assignment,omitempty"`
	Missing    bool   `json:"missing,omitempty"`
}

// courses lists the courses of the current sessions, optionally one.
func (g *Local) courses(ctx context.Context, filter string) ([]*Course, map[string][]store.Session, error) {
	ss, err := g.Store.ListSessions(ctx, store.SessionFilter{Course: filter})
	if err != nil {
		return nil, nil, err
	}
	byKey := map[string]*Course{}
	sessions := map[string][]store.Session{}
	var out []*Course
	for i := range ss {
		s := ss[i]
		k := s.Platform + "\x00" + s.ContextID
		c, ok := byKey[k]
		if !ok {
			c = &Course{Platform: s.Platform, ContextID: s.ContextID, Label: s.ContextLabel, Title: s.ContextTitle, Version: s.Version}
			byKey[k] = c
			out = append(out, c)
		}
		if c.sample == nil && s.Origin == "" && nrpsURL(&s) != "" {
			c.sample = &ss[i]
		}
		if c.sample == nil && s.Origin == "" && s.Version == "1.3" {
			c.sample = &ss[i]
		}
		sessions[k] = append(sessions[k], s)
	}
	return out, sessions, nil
}

func courseKey(c *Course) string { return c.Platform + "\x00" + c.ContextID }

// nrpsURL is the context_memberships_url of a launch's NRPS claim.
func nrpsURL(s *store.Session) string {
	if s == nil || s.Version != "1.3" || len(s.AuthState) == 0 {
		return ""
	}
	var as map[string]json.RawMessage
	if json.Unmarshal(s.AuthState, &as) != nil {
		return ""
	}
	var claim struct {
		URL string `json:"context_memberships_url"`
	}
	if json.Unmarshal(as[ags.ClaimNRPS], &claim) != nil {
		return ""
	}
	return claim.URL
}

// rosterCache keeps the members of a course for a short while: a batch
// scores many rows of one course with one roster fetch, while a long-lived
// grading service still sees a student who enrolled since.
type rosterCache struct {
	mu sync.Mutex
	m  map[string]cachedRoster
}

type cachedRoster struct {
	members []ags.Member
	at      time.Time
}

// rosterTTL bounds how stale a cached roster may be.
const rosterTTL = 2 * time.Minute

var rosters = &rosterCache{m: map[string]cachedRoster{}}

// forget empties the cache (tests, benchmarks).
func (rc *rosterCache) forget() {
	rc.mu.Lock()
	rc.m = map[string]cachedRoster{}
	rc.mu.Unlock()
}

// members fetches (or reuses) the NRPS roster of a course.
func (g *Local) members(ctx context.Context, c *Course) ([]ags.Member, error) {
	k := courseKey(c)
	rosters.mu.Lock()
	cr, ok := rosters.m[k]
	rosters.mu.Unlock()
	if ok && time.Since(cr.at) < rosterTTL {
		return cr.members, nil
	}
	u := nrpsURL(c.sample)
	if u == "" {
		return nil, fmt.Errorf("the platform sent no roster service (NRPS claim) with the launches of %s", c.Name())
	}
	plat, err := g.Platform(c.sample.Platform, c.sample.ClientID)
	if err != nil {
		return nil, err
	}
	m, err := g.AGSClient(1).Members(ctx, plat, u)
	if err != nil {
		return nil, agsErr(err)
	}
	rosters.mu.Lock()
	rosters.m[k] = cachedRoster{members: m, at: time.Now()}
	rosters.mu.Unlock()
	return m, nil
}

// usernameKey is the platform's username_key.
func (g *Local) usernameKey(issuer, clientID string) string {
	if p, err := g.Config.Platform(issuer, clientID); err == nil && p.UsernameKey != "" {
		return p.UsernameKey
	}
	return "email"
}

// hubName maps a roster member to a hub user name the way the hub's
// LTI13Authenticator would (its username_key), lowercased as JupyterHub
// does; "" when the member lacks the field.
func hubName(m ags.Member, key string) string {
	var v string
	switch key {
	case "sub", "user_id":
		v = m.UserID
	case "email":
		v = m.Email
	case "name":
		v = m.Name
	case "given_name":
		v = m.GivenName
	case "family_name":
		v = m.FamilyName
	case "lis_person_sourcedid", "person_sourcedid":
		v = m.LISPersonSourcedID
	}
	return strings.ToLower(strings.TrimSpace(v))
}

func shortRole(roles []string) string {
	for _, want := range []string{"Instructor", "TeachingAssistant", "ContentDeveloper", "Administrator", "Mentor", "Learner"} {
		for _, r := range roles {
			if strings.HasSuffix(r, "#"+want) || strings.HasSuffix(r, "/"+want) || strings.EqualFold(r, want) {
				return want
			}
		}
	}
	if len(roles) > 0 {
		r := roles[0]
		return r[strings.LastIndexAny(r, "#/")+1:]
	}
	return ""
}

// Roster lists each matching course's members with their hub user names
// and the assignments they launched.
func (g *Local) Roster(ctx context.Context, r RosterRequest) ([]RosterReport, error) {
	courses, sessions, err := g.courses(ctx, r.Course)
	if err != nil {
		return nil, err
	}
	if len(courses) == 0 {
		return nil, WithCode(ExitNoSession, fmt.Errorf("no launches of a course %q", r.Course), "list courses with: ltigrade sessions list")
	}
	var out []RosterReport
	for _, c := range courses {
		ss := sessions[courseKey(c)]
		rep := RosterReport{Course: *c, Members: []RosterMember{}}
		titles := map[string]string{}
		for _, s := range ss {
			if s.Origin == "" {
				titles[s.ResourceLinkID] = firstNonEmpty(s.ResourceLinkTitle, s.ResourceLinkID)
			}
		}
		for _, t := range titles {
			rep.Assignments = append(rep.Assignments, t)
		}
		sort.Strings(rep.Assignments)
		if r.Assignment != "" && !assignmentKnown(ss, r.Assignment) {
			continue
		}
		launched := map[string][]string{} // LTI user id → titles
		userOf := map[string]string{}     // LTI user id → hub user
		for _, s := range ss {
			if s.Origin != "" {
				continue
			}
			if r.Assignment == "" || anyFold(r.Assignment, s.ResourceLinkID, s.ResourceLinkTitle) {
				launched[s.LTIUserID] = appendNew(launched[s.LTIUserID], titles[s.ResourceLinkID])
			}
			userOf[s.LTIUserID] = s.Username
		}
		var members []ags.Member
		if c.Version == "1.3" && nrpsURL(c.sample) != "" {
			if members, err = g.members(ctx, c); err != nil {
				return nil, err
			}
			rep.Source = "nrps"
		} else {
			rep.Source = "launches"
			rep.Note = "from launches only: LTI 1.1 has no roster service, so students who never launched are not known"
			if c.Version == "1.3" {
				rep.Note = "from launches only: the platform sent no roster service (NRPS claim)"
			}
			for id, u := range userOf {
				roles := []string{}
				for _, s := range ss {
					if s.LTIUserID == id && s.Roles != "" {
						roles = strings.Split(s.Roles, ",")
						break
					}
				}
				members = append(members, ags.Member{UserID: id, Name: u, Roles: roles})
			}
			// Map order is random; a roster printed twice should read the same.
			sort.Slice(members, func(i, j int) bool { return members[i].UserID < members[j].UserID })
		}
		key := g.usernameKey(c.Platform, sampleClient(c))
		for _, m := range members {
			rm := RosterMember{LMSUserID: m.UserID, Name: m.Name, Email: m.Email, Roles: m.Roles, Role: shortRole(m.Roles),
				Status: m.Status, Launched: launched[m.UserID]}
			if rm.Launched == nil {
				rm.Launched = []string{}
			}
			sort.Strings(rm.Launched)
			if u, ok := userOf[m.UserID]; ok {
				rm.HubUser, rm.MappedBy = u, "launch"
			} else if u := hubName(m, key); u != "" {
				rm.HubUser, rm.MappedBy = u, key
			}
			if r.Missing && (len(rm.Launched) > 0 || !(m.Learner() || rep.Source == "launches" && rm.Role == "Learner") || !m.Active()) {
				continue
			}
			rep.Members = append(rep.Members, rm)
		}
		sort.Slice(rep.Members, func(i, j int) bool {
			if rep.Members[i].HubUser != rep.Members[j].HubUser {
				return rep.Members[i].HubUser < rep.Members[j].HubUser
			}
			return rep.Members[i].LMSUserID < rep.Members[j].LMSUserID
		})
		out = append(out, rep)
	}
	if len(out) == 0 {
		return nil, WithCode(ExitNoSession, fmt.Errorf("no course has an assignment %q", r.Assignment), "")
	}
	return out, nil
}

func sampleClient(c *Course) string {
	if c.sample != nil {
		return c.sample.ClientID
	}
	return ""
}

func assignmentKnown(ss []store.Session, a string) bool {
	for _, s := range ss {
		if anyFold(a, s.ResourceLinkID, s.ResourceLinkTitle) {
			return true
		}
	}
	return false
}

func appendNew(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// rosterEpoch is the launch time of a roster session: older than any real
// launch, so the student's first real launch of the assignment becomes
// its session's current launch at once.
var rosterEpoch = time.Unix(0, 0).UTC()

// viaRoster resolves a notebook of a student who never launched its
// assignment (LTI 1.3): the assignment is the one other students' launches
// cover it with (the coverage rule), among courses whose roster holds the
// student exactly once; the score goes to that assignment's line item for
// the student's LMS id. It records a roster session for the student (so
// the outbox orders their scores as for anyone) and returns it. nf is the
// ordinary resolve's verdict, returned when the roster cannot help.
func (g *Local) viaRoster(ctx context.Context, user, rel string, nf *resolve.NotFoundError, record bool) (*store.Session, *resolve.Result, error) {
	first, _, _ := strings.Cut(rel, "/")
	if first == "" || first == rel {
		return nil, nil, nf
	}
	others, err := g.Store.LinkSessions(ctx, first)
	if err != nil {
		return nil, nil, err
	}
	// The assignments whose launches (of other students) cover rel, best
	// match first, as Best ranks one student's sessions.
	var pool []store.Session
	for _, s := range others {
		if s.Username != user {
			pool = append(pool, s)
		}
	}
	if len(pool) == 0 {
		return nil, nil, nf
	}
	rv := &resolve.Resolver{Store: g.Store, Layout: g.Config.Paths.Layout()}
	best, _, ok, err := rv.BestAmong(ctx, pool, rel)
	if errors.As(err, new(*resolve.AmbiguousError)) {
		// Other students' assignments tie: nothing to choose by, and
		// their launches are no --launch choice for this student.
		nf.Roster = "other students' launches of several assignments cover it equally, so the roster cannot place it"
		return nil, nil, nf
	}
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, nf
	}
	src := best.Session
	if src.Version != "1.3" {
		nf.Roster = fmt.Sprintf("other students' launches of %q cover it, but LTI 1.1 gives no sourcedId until %s launches it", src.ResourceLinkTitle, user)
		return nil, nil, nf
	}
	// The covering launch itself names the roster when it carries the
	// NRPS claim (the usual case): no need to list the whole course for
	// every row of a batch.
	course := &Course{Platform: src.Platform, ContextID: src.ContextID, Label: src.ContextLabel, Title: src.ContextTitle, Version: src.Version}
	if nrpsURL(&src) != "" {
		course.sample = &src
	} else {
		courses, _, err := g.courses(ctx, src.ContextID)
		if err != nil {
			return nil, nil, err
		}
		course = nil
		for _, c := range courses {
			if c.Platform == src.Platform && c.ContextID == src.ContextID {
				course = c
			}
		}
	}
	if course == nil || course.sample == nil || nrpsURL(course.sample) == "" {
		nf.Roster = fmt.Sprintf("other students' launches of %q cover it, but the platform sent no roster service to find %s in", src.ResourceLinkTitle, user)
		return nil, nil, nf
	}
	m, why, err := g.rosterMember(ctx, course, user)
	if err != nil {
		return nil, nil, err
	}
	if why != "" {
		nf.Roster = fmt.Sprintf("other students' launches of %q cover it, but %s", src.ResourceLinkTitle, why)
		return nil, nil, nf
	}
	auth, _ := json.Marshal(map[string]any{"ltigrade_origin": "roster", "from_launch": src.LaunchID,
		"member": map[string]any{"user_id": m.UserID, "name": m.Name, "email": m.Email, "roles": m.Roles}})
	l := &store.Launch{Username: user, Version: "1.3", Platform: src.Platform, ClientID: src.ClientID,
		DeploymentID: src.DeploymentID, LTIUserID: m.UserID, ResourceLinkID: src.ResourceLinkID,
		ResourceLinkTitle: src.ResourceLinkTitle, ContextID: src.ContextID, ContextLabel: src.ContextLabel,
		ContextTitle: src.ContextTitle, Roles: strings.Join(m.Roles, ","), LineItem: src.LineItem, LineItems: src.LineItems,
		AGSScopes: src.AGSScopes, Repo: src.Repo, Checkout: src.Checkout, Opened: src.Opened, OpenedFile: src.OpenedFile,
		// The coverage is the other student's: as trustworthy as their
		// link was, no more (an unsigned one stays for resolve to confirm).
		NextSigned: src.NextSigned, UnsignedNext: src.UnsignedNext,
		Origin: "roster", LaunchedAt: rosterEpoch, RecordedAt: g.now(), AuthState: auth}
	sess := &store.Session{Launch: *l}
	if record {
		if sess, err = g.Store.RecordLaunch(ctx, l); err != nil {
			return nil, nil, err
		}
	}
	res := &resolve.Result{Path: nf.Path, Username: user, Rel: rel, Root: g.Config.Paths.Layout().Root(user),
		Match: resolve.Candidate{Session: *sess, How: best.How, Depth: best.Depth, Cover: best.Cover}, Via: "roster"}
	return sess, res, nil
}

// rosterMember finds hub user user on the roster of course: by the LMS id
// of the user's own launches of the platform when there are any, else by
// the platform's username_key. why says why not (none), an error says
// several (exit 4) or the roster could not be read.
func (g *Local) rosterMember(ctx context.Context, course *Course, user string) (ags.Member, string, error) {
	members, err := g.members(ctx, course)
	if err != nil {
		return ags.Member{}, "", fmt.Errorf("roster of %s: %w", course.Name(), err)
	}
	key := g.usernameKey(course.Platform, sampleClient(course))
	known := map[string]bool{}
	mine, err := g.Store.UserSessions(ctx, user)
	if err != nil {
		return ags.Member{}, "", err
	}
	for _, s := range mine {
		if s.Platform == course.Platform && s.Origin == "" {
			known[s.LTIUserID] = true
		}
	}
	var hits []ags.Member
	for _, m := range members {
		if !m.Active() {
			continue
		}
		if known[m.UserID] || (len(known) == 0 && hubName(m, key) == user) {
			hits = append(hits, m)
		}
	}
	switch len(hits) {
	case 0:
		by := key
		if len(known) > 0 {
			by = "the LMS id of " + user + "'s launches"
		}
		return ags.Member{}, fmt.Sprintf("the roster of %s has no active member that is hub user %q (by %s)", course.Name(), user, by), nil
	case 1:
		return hits[0], "", nil
	}
	var names []string
	for _, m := range hits {
		names = append(names, fmt.Sprintf("%s <%s> (LMS id %s)", m.Name, m.Email, m.UserID))
	}
	return ags.Member{}, "", WithCode(ExitAmbiguous, fmt.Errorf("hub user %q is %d members of the roster of %s: %s",
		user, len(hits), course.Name(), strings.Join(names, ", ")), "score this student with --launch once they launch the assignment")
}

// errNotFound unwraps a resolve's not-found verdict.
func asNotFound(err error) (*resolve.NotFoundError, bool) {
	var nf *resolve.NotFoundError
	return nf, errors.As(err, &nf)
}
