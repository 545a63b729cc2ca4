package main

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/nbgitpuller"
	"github.com/ltigrade/ltigrade/internal/store"
)

// The simulated course: one Canvas consumer, one course, links-1 homework
// links that open a notebook and one lab link that opens a folder, all from
// one nbgitpuller repository (so every session shares the checkout folder
// and resolve has to rank notebook over folder over checkout matches).
const (
	consumerKey  = "ds100-canvas"
	contextID    = "4dde05e8ca1973bcca9bffc13e1548820eee93a3"
	contextLabel = "DS100"
	contextTitle = "Principles of Data Science"
	repoURL      = "https://github.com/example/ds100-materials"
	checkoutDir  = "ds100-materials"
	canvasHost   = "https://canvas.example.edu"
)

// semesterStart and semesterLen bound the seeded launch times; the launches
// that `ltigrade record` is timed with come after them.
var (
	semesterStart = time.Date(2026, 8, 31, 8, 0, 0, 0, time.UTC)
	semesterLen   = 15 * 7 * 24 * time.Hour
	afterSemester = time.Date(2027, 1, 4, 9, 0, 0, 0, time.UTC)
)

type link struct {
	id, title string
	nextURL   string
	notebook  string // a notebook inside what the link opens, relative to the user's root
	pull      *nbgitpuller.Link
}

type corpus struct {
	users int
	width int // digits of the user number
	links []link
}

func newCorpus(users, links int) (*corpus, error) {
	if users < 1 || links < 1 {
		return nil, fmt.Errorf("need at least one user and one link")
	}
	c := &corpus{users: users, width: max(5, len(strconv.Itoa(users-1)))}
	for k := range links {
		var l link
		l.id = hexSum("resource-link", strconv.Itoa(k))
		var urlpath string
		if k == links-1 && links > 1 {
			n := strconv.Itoa(k - links + 2)
			l.title = "Lab " + n
			urlpath = "tree/" + checkoutDir + "/lab/lab" + n // a folder
			l.notebook = checkoutDir + "/lab/lab" + n + "/lab" + n + ".ipynb"
		} else {
			n := strconv.Itoa(k + 1)
			l.title = "Homework " + n
			l.notebook = checkoutDir + "/hw/hw" + n + "/hw" + n + ".ipynb"
			urlpath = "tree/" + l.notebook
		}
		l.nextURL = "/hub/user-redirect/git-pull?repo=" + url.QueryEscape(repoURL) +
			"&urlpath=" + url.QueryEscape(urlpath) + "&branch=main"
		p, err := nbgitpuller.Parse(l.nextURL)
		if err != nil {
			return nil, fmt.Errorf("link %d: %w", k, err)
		}
		l.pull = p
		c.links = append(c.links, l)
	}
	return c, nil
}

func hexSum(parts ...string) string {
	h := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}

func (c *corpus) username(u int) string { return fmt.Sprintf("user%0*d", c.width, u) }

// authState is what ltiauthenticator hands the hook for a Canvas LTI 1.1
// launch (internal/launch/testdata/canvas-lti11.json), compact, in the order
// launch.Parse keeps.
func (c *corpus) authState(u, k int) (state string, ltiUser, sourcedID string) {
	name := c.username(u)
	l := c.links[k]
	canvasUser := strconv.Itoa(1000000 + u)
	ltiUser = hexSum("lti-user", name)
	sourcedID = fmt.Sprintf("77-1001-%d-%s-%s", 2001+k, canvasUser, hexSum("sourcedid", name, l.id))
	var b strings.Builder
	b.Grow(1400)
	kv := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(',')
		} else {
			b.WriteByte('{')
		}
		b.WriteString(strconv.Quote(k))
		b.WriteByte(':')
		b.WriteString(strconv.Quote(v))
	}
	kv("context_id", contextID)
	kv("context_label", contextLabel)
	kv("context_title", contextTitle)
	kv("custom_canvas_course_id", "1001")
	kv("custom_canvas_user_id", canvasUser)
	kv("ext_outcome_data_values_accepted", "url,text")
	kv("ext_outcome_result_total_score_accepted", "true")
	kv("ext_outcome_submission_submitted_at_accepted", "true")
	kv("ext_roles", "urn:lti:instrole:ims/lis/Student,urn:lti:role:ims/lis/Learner,urn:lti:sysrole:ims/lis/User")
	kv("launch_presentation_document_target", "iframe")
	kv("launch_presentation_return_url", canvasHost+"/courses/1001/assignments")
	kv("lis_outcome_service_url", canvasHost+"/api/lti/v1/tools/77/grade_passback")
	kv("lis_person_contact_email_primary", name+"@example.edu")
	kv("lis_person_name_full", "Student "+name[4:])
	kv("lis_result_sourcedid", sourcedID)
	kv("lti_message_type", "basic-lti-launch-request")
	kv("lti_version", "LTI-1p0")
	kv("resource_link_id", l.id)
	kv("resource_link_title", l.title)
	kv("roles", "Learner")
	kv("tool_consumer_info_product_family_code", "canvas")
	kv("tool_consumer_instance_guid", "canvas.example.edu")
	kv("user_id", ltiUser)
	b.WriteByte('}')
	return b.String(), ltiUser, sourcedID
}

// launchJSON is the input of `ltigrade record` for user u launching link k.
func (c *corpus) launchJSON(u, k int, at time.Time) string {
	state, _, _ := c.authState(u, k)
	return fmt.Sprintf(`{"username": %q, "consumer_key": %q, "next_url": %q, "launched_at": %q, "hub_version": "5.2.1", "auth_state": %s}`+"\n",
		c.username(u), consumerKey, c.links[k].nextURL, at.UTC().Format(time.RFC3339), state)
}

// storeLaunch is the row `ltigrade record` stores for launchJSON(u, k, at)
// (checked against launch.Parse by checkCorpus).
func (c *corpus) storeLaunch(u, k int, at time.Time) *store.Launch {
	state, ltiUser, sourcedID := c.authState(u, k)
	l := c.links[k]
	return &store.Launch{
		Username: c.username(u), Version: "1.1", Platform: consumerKey, LTIUserID: ltiUser,
		ResourceLinkID: l.id, ResourceLinkTitle: l.title, ContextID: contextID, ContextLabel: contextLabel,
		ContextTitle: contextTitle, Roles: "Learner",
		OutcomeURL: canvasHost + "/api/lti/v1/tools/77/grade_passback", SourcedID: sourcedID,
		ResultDataAccepted: []string{"url", "text"}, SubmittedAtAccepted: true,
		NextURL: l.nextURL, Repo: l.pull.Repo, Checkout: l.pull.Checkout(""), Opened: l.pull.OpenedPath(""),
		OpenedFile: l.pull.OpenedFile, NextSigned: true, LaunchedAt: at.UTC(), RecordedAt: at.UTC().Add(150 * time.Millisecond),
		AuthState: []byte(state),
	}
}
