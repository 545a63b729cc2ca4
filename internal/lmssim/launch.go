package lmssim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ltigrade/ltigrade/internal/lti11"
	"github.com/ltigrade/ltigrade/internal/nbgitpuller"
)

// LaunchWindow is how long ltiauthenticator accepts a launch after it was
// signed (lti11/validator.py: |now - oauth_timestamp| <= 30 s). A launch
// page must be submitted within it, so the sandbox signs at render time.
const LaunchWindow = 30 * time.Second

// UsernameKey is the launch parameter ltiauthenticator's LTI11Authenticator
// takes the hub username from by default (username_key), falling back to
// user_id when it is empty. Sending it makes the hub username the student's
// name whatever the authenticator's setting.
const UsernameKey = "custom_canvas_user_id"

// Student is one learner of the simulated course.
type Student struct {
	Name     string // hub username, sent as custom_canvas_user_id (LTI 1.1) and custom "username" (LTI 1.3)
	UserID   string // LTI user_id, the LTI 1.3 sub; "" means Name
	FullName string // lis_person_name_full, the LTI 1.3 name; "" means Name
	// Email is the LTI 1.3 email claim and NRPS email, which
	// ltiauthenticator's default username_key makes the hub username; ""
	// means Name@EmailDomain.
	Email string
	// Roles are LIS context roles: short names such as "Learner" or
	// "Instructor", or full role URIs; none means Learner.
	Roles []string
}

// EmailDomain completes the email of a student who has none.
const EmailDomain = "lms.test"

// Assignment is one LMS assignment: a resource link whose launch opens a
// notebook of the course repository through nbgitpuller.
type Assignment struct {
	ID     string // the simulator's name for it, used in its URLs
	LinkID string // resource_link_id; "" means ID
	Title  string // resource_link_title; "" means ID
	Path   string // notebook (or folder) inside the course repository
	// Custom parameters of the link: custom_<name> in LTI 1.1, the custom
	// claim in LTI 1.3.
	Custom map[string]string
	// ScoreMaximum is the LTI 1.3 line item's maximum; 0 means 100.
	ScoreMaximum float64
	// NoLineItemClaim leaves lineitem out of the LTI 1.3 grade-service
	// claim (only the lineitems container is named), as platforms do for a
	// link created without a gradebook column: the tool must look it up.
	NoLineItemClaim bool
}

// Course is the simulated course: who is enrolled, which assignments it
// has, and the repository nbgitpuller clones for them.
type Course struct {
	ID, Label, Title string
	Repo             string // nbgitpuller repo=
	Branch           string // nbgitpuller branch=; "" lets nbgitpuller use the repository's default branch
	Students         []Student
	Assignments      []Assignment
}

// LaunchBuilder builds the LTI 1.1 basic launches an LMS would send for a
// course. `ltigrade sandbox` signs them for a real hub; `ltigrade demo`
// records what the hub would hand its hook (AuthState), so both exercise
// the same parameters.
type LaunchBuilder struct {
	// HubURL is the hub's public URL including any base_url, e.g.
	// https://hub.example.org or http://127.0.0.1:8000/jupyter. Only Sign
	// needs it; its path prefixes the nbgitpuller link, as JupyterHub
	// expects a base_url-relative next.
	HubURL     string
	OutcomeURL string // lis_outcome_service_url
	Key        string // oauth_consumer_key
	Secret     string // never leaves the signature
	Course     Course
	Now        func() time.Time // default time.Now
	Nonce      func() string    // default 16 random bytes as hex

	// LTI 1.3 (Claims): the platform's side of the registration and the
	// services its launches name. Platform fills them from itself.
	Issuer, ClientID, DeploymentID string
	LineItemsURL                   string            // AGS lineitems; "" leaves the AGS claim out
	LineItemURLs                   map[string]string // assignment ID → its AGS lineitem
	AGSScopes                      []string          // nil means DefaultAGSScopes
	MembershipsURL                 string            // NRPS context_memberships_url; "" leaves the NRPS claim out
}

// SignedLaunch is a launch ready to POST as a form: Action is the hub's
// launch URL with the nbgitpuller link in its next= query parameter, Params
// the form fields, oauth_signature included. The signature covers the query
// parameters too, as OAuth 1.0a (RFC 5849 §3.4.1.3) and ltiauthenticator,
// which signs every tornado argument, require.
type SignedLaunch struct {
	Action string            `json:"action"`
	Params map[string]string `json:"params"`
}

// ErrUnknown is wrapped by lookups of a student or assignment the course
// does not have.
var ErrUnknown = errors.New("not in the course")

var (
	// studentRE keeps sandbox usernames to what JupyterHub keeps as typed
	// (it lowercases) and what TLJH turns into a Unix user jupyter-<name>.
	studentRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	assignmentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	customRE     = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
)

// maxParam bounds any configured value: a launch is a few KiB and a hub
// refuses request lines and bodies far larger than that.
const maxParam = 1024

func checkText(what, v string, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return fmt.Errorf("%s is empty", what)
	case len(v) > maxParam:
		return fmt.Errorf("%s is longer than %d bytes", what, maxParam)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case strings.ContainsFunc(v, unicode.IsControl):
		// Browsers rewrite line breaks in form values to CRLF, which would
		// break the signature, and nothing legitimate needs them.
		return fmt.Errorf("%s contains a control character", what)
	}
	return nil
}

// Validate checks the course and the builder's URLs. Sign and AuthState
// call it; callers that take user input call it first for a clean error.
func (b *LaunchBuilder) Validate() error {
	c := b.Course
	if err := checkText("course id", c.ID, true); err != nil {
		return err
	}
	for _, f := range []struct{ what, v string }{{"course label", c.Label}, {"course title", c.Title}, {"branch", c.Branch}, {"consumer key", b.Key}, {"outcome service URL", b.OutcomeURL}} {
		if err := checkText(f.what, f.v, false); err != nil {
			return err
		}
	}
	if err := checkText("course repository", c.Repo, true); err != nil {
		return err
	}
	if len(c.Students) == 0 {
		return errors.New("the course has no students")
	}
	if len(c.Assignments) == 0 {
		return errors.New("the course has no assignments")
	}
	seen := map[string]bool{}
	for _, s := range c.Students {
		if !studentRE.MatchString(s.Name) {
			return fmt.Errorf("student name %q must be 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit (it becomes the hub username)", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("student %q is listed twice", s.Name)
		}
		seen[s.Name] = true
		if err := checkText("student user id", s.UserID, false); err != nil {
			return err
		}
		if err := checkText("student full name", s.FullName, false); err != nil {
			return err
		}
		if err := checkText("student email", s.Email, false); err != nil {
			return err
		}
		for _, r := range s.Roles {
			if err := checkText("student role", r, true); err != nil {
				return err
			}
			if strings.ContainsAny(r, ", ") {
				return fmt.Errorf("student %q: role %q must not contain ',' or spaces", s.Name, r)
			}
		}
	}
	seen = map[string]bool{}
	for _, a := range c.Assignments {
		if !assignmentRE.MatchString(a.ID) {
			return fmt.Errorf("assignment id %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", a.ID)
		}
		if seen[a.ID] {
			return fmt.Errorf("assignment %q is listed twice", a.ID)
		}
		seen[a.ID] = true
		for _, f := range []struct{ what, v string }{{"assignment link id", a.LinkID}, {"assignment title", a.Title}} {
			if err := checkText(f.what, f.v, false); err != nil {
				return err
			}
		}
		if err := checkNotebookPath(a.Path); err != nil {
			return fmt.Errorf("assignment %s: %w", a.ID, err)
		}
		for k, v := range a.Custom {
			if !customRE.MatchString(k) {
				return fmt.Errorf("assignment %s: custom parameter name %q must be letters, digits and '_'", a.ID, k)
			}
			if err := checkText("custom parameter "+k, v, false); err != nil {
				return fmt.Errorf("assignment %s: %w", a.ID, err)
			}
		}
		if a.ScoreMaximum < 0 || math.IsInf(a.ScoreMaximum, 0) || math.IsNaN(a.ScoreMaximum) {
			return fmt.Errorf("assignment %s: score maximum %v must be positive", a.ID, a.ScoreMaximum)
		}
		// The link must survive our own nbgitpuller reading, so that what
		// the sandbox sends is what `ltigrade record` will understand.
		if _, _, err := b.pullLink(a); err != nil {
			return fmt.Errorf("assignment %s: %w", a.ID, err)
		}
	}
	return nil
}

func checkNotebookPath(p string) error {
	if err := checkText("notebook path", p, true); err != nil {
		return err
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, `\`) {
		return fmt.Errorf("notebook path %q must be relative to the repository, with '/' separators", p)
	}
	if c := path.Clean(p); c != p || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return fmt.Errorf("notebook path %q must be a clean path inside the repository (no '..', '.', '//' or trailing '/')", p)
	}
	return nil
}

// RepoDir is the folder nbgitpuller clones the repository into: the last
// path segment of repo, trailing slashes dropped and ".git" kept
// (nbgitpuller/handlers.py).
func RepoDir(repo string) string {
	r := strings.TrimRight(repo, "/")
	return r[strings.LastIndex(r, "/")+1:]
}

// hubPath is the path part of HubURL without a trailing slash: JupyterHub's
// base_url, which a next= link must carry.
func (b *LaunchBuilder) hubPath() (string, error) {
	if b.HubURL == "" {
		return "", nil
	}
	u, err := parseHubURL(b.HubURL)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(u.EscapedPath(), "/"), nil
}

// parseHubURL accepts an absolute http(s) URL without query or fragment.
func parseHubURL(s string) (*url.URL, error) {
	if err := checkText("hub URL", s, true); err != nil {
		return nil, err
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("hub URL %q: %v", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("hub URL %q must be an http:// or https:// URL such as http://127.0.0.1:8000", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("hub URL %q must not have a query or fragment", s)
	}
	return u, nil
}

// pullLink returns the nbgitpuller link (base_url-relative, for next=) that
// opens the assignment's notebook, and the notebook path relative to the
// user's server root.
func (b *LaunchBuilder) pullLink(a Assignment) (link, opened string, err error) {
	prefix, err := b.hubPath()
	if err != nil {
		return "", "", err
	}
	dir := RepoDir(b.Course.Repo)
	q := url.Values{"repo": {b.Course.Repo}, "urlpath": {"tree/" + dir + "/" + a.Path}}
	if b.Course.Branch != "" {
		q.Set("branch", b.Course.Branch)
	}
	link = prefix + "/hub/user-redirect/git-pull?" + q.Encode()
	p, err := nbgitpuller.Parse(link)
	if err != nil {
		return "", "", fmt.Errorf("course repository %q: %v", b.Course.Repo, err)
	}
	if want := path.Join(dir, a.Path); p.Opened != want {
		return "", "", fmt.Errorf("course repository %q: the link would open %q, not %q", b.Course.Repo, p.Opened, want)
	}
	return link, p.Opened, nil
}

func (b *LaunchBuilder) find(student, assignment string) (Student, Assignment, error) {
	var s *Student
	for i := range b.Course.Students {
		if b.Course.Students[i].Name == student {
			s = &b.Course.Students[i]
		}
	}
	if s == nil {
		return Student{}, Assignment{}, fmt.Errorf("student %q: %w", student, ErrUnknown)
	}
	for _, a := range b.Course.Assignments {
		if a.ID == assignment {
			return *s, a, nil
		}
	}
	return Student{}, Assignment{}, fmt.Errorf("assignment %q: %w", assignment, ErrUnknown)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// SourcedID is the lis_result_sourcedid of a student's assignment:
// <context_id>:<resource_link_id>:<user_id>.
func (b *LaunchBuilder) SourcedID(student, assignment string) (string, error) {
	s, a, err := b.find(student, assignment)
	if err != nil {
		return "", err
	}
	return b.sourcedID(s, a), nil
}

func (b *LaunchBuilder) sourcedID(s Student, a Assignment) string {
	return b.Course.ID + ":" + or(a.LinkID, a.ID) + ":" + or(s.UserID, s.Name)
}

// Params returns the launch's LTI parameters (no oauth_*) and the
// nbgitpuller link that goes into the launch URL's next= parameter.
func (b *LaunchBuilder) Params(student, assignment string) (params map[string]string, next string, err error) {
	if err := b.Validate(); err != nil {
		return nil, "", err
	}
	s, a, err := b.find(student, assignment)
	if err != nil {
		return nil, "", err
	}
	next, _, err = b.pullLink(a)
	if err != nil {
		return nil, "", err
	}
	c := b.Course
	params = map[string]string{
		"lti_message_type":                       "basic-lti-launch-request",
		"lti_version":                            "LTI-1p0",
		"resource_link_id":                       or(a.LinkID, a.ID),
		"resource_link_title":                    or(a.Title, a.ID),
		"user_id":                                or(s.UserID, s.Name),
		UsernameKey:                              s.Name,
		"roles":                                  strings.Join(s.roles(), ","),
		"lis_person_name_full":                   or(s.FullName, s.Name),
		"context_id":                             c.ID,
		"context_label":                          or(c.Label, c.ID),
		"context_title":                          or(c.Title, c.ID),
		"lis_outcome_service_url":                b.OutcomeURL,
		"lis_result_sourcedid":                   b.sourcedID(s, a),
		"ext_outcome_data_values_accepted":       "text",
		"tool_consumer_info_product_family_code": "ltigrade-sandbox",
	}
	for k, v := range a.Custom {
		params["custom_"+k] = v
	}
	if b.OutcomeURL == "" {
		delete(params, "lis_outcome_service_url")
		delete(params, "lis_result_sourcedid")
		delete(params, "ext_outcome_data_values_accepted")
	}
	return params, next, nil
}

// AuthState is what ltiauthenticator hands JupyterHub (and so our
// post_auth_hook) for this launch: every launch argument, the query's next
// included, except oauth_*.
func (b *LaunchBuilder) AuthState(student, assignment string) (map[string]string, error) {
	params, next, err := b.Params(student, assignment)
	if err != nil {
		return nil, err
	}
	params["next"] = next
	return params, nil
}

// Sign builds the launch and signs it with a fresh nonce and timestamp, so
// every page render or JSON request gives a launch the hub accepts within
// LaunchWindow and never a replay.
func (b *LaunchBuilder) Sign(student, assignment string) (*SignedLaunch, error) {
	if b.HubURL == "" {
		return nil, errors.New("no hub URL to launch into")
	}
	if b.Key == "" || b.Secret == "" {
		return nil, errors.New("no consumer key and secret to sign with")
	}
	params, next, err := b.Params(student, assignment)
	if err != nil {
		return nil, err
	}
	hub, err := parseHubURL(b.HubURL)
	if err != nil {
		return nil, err
	}
	now, nonce := time.Now, randomNonce
	if b.Now != nil {
		now = b.Now
	}
	if b.Nonce != nil {
		nonce = b.Nonce
	}
	// ltiauthenticator requires each of these, oauth_callback too in the
	// 1.x releases before 1.6 (lti11/constants.py LTI11_OAUTH_ARGS).
	params["oauth_consumer_key"] = b.Key
	params["oauth_signature_method"] = "HMAC-SHA1"
	params["oauth_timestamp"] = strconv.FormatInt(now().Unix(), 10)
	params["oauth_nonce"] = nonce()
	params["oauth_version"] = "1.0"
	params["oauth_callback"] = "about:blank"

	action := strings.TrimRight(hub.String(), "/") + "/hub/lti/launch?" + url.Values{"next": {next}}.Encode()
	signed := make([][2]string, 0, len(params)+1)
	for k, v := range params {
		signed = append(signed, [2]string{k, v})
	}
	signed = append(signed, [2]string{"next", next})
	sig, err := lti11.Signature("POST", action, signed, b.Secret, "")
	if err != nil {
		return nil, err
	}
	params["oauth_signature"] = sig
	return &SignedLaunch{Action: action, Params: params}, nil
}

// HubArgs is what ltiauthenticator sees of a launch: the launch URL's query
// arguments and the form fields merged (tornado's request.arguments), each
// name with its first value (utils.convert_request_to_dict), query first.
func (l *SignedLaunch) HubArgs() (map[string]string, error) {
	u, err := url.Parse(l.Action)
	if err != nil {
		return nil, err
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, err
	}
	args := map[string]string{}
	for k, vs := range q {
		args[k] = vs[0]
	}
	for k, v := range l.Params {
		if _, ok := args[k]; !ok {
			args[k] = v
		}
	}
	return args, nil
}

// AuthState is ltiauthenticator's auth_state for this launch: HubArgs
// without oauth_*.
func (l *SignedLaunch) AuthState() (map[string]string, error) {
	args, err := l.HubArgs()
	if err != nil {
		return nil, err
	}
	for k := range args {
		if strings.HasPrefix(k, "oauth_") {
			delete(args, k)
		}
	}
	return args, nil
}

func randomNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail on supported platforms
	return hex.EncodeToString(b[:])
}
