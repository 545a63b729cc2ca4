// Package launch reads one LTI launch, as our JupyterHub post_auth_hook
// sends it, and normalises LTI 1.1 and LTI 1.3 into one Launch.
//
// What the hook sees comes from jupyterhub/ltiauthenticator:
//   - LTI 1.1 (lti11/auth.py): auth_state is every launch argument except
//     oauth_*, each value the first of tornado's argument list
//     (utils.convert_request_to_dict). Older hooks copy the raw lists, so
//     single values and lists of strings are both accepted. The consumer key
//     is not in auth_state; the hook reads it from the request.
//   - LTI 1.1 redirect (lti11/handlers.py): custom_next from the POST body
//     wins over JupyterHub's next.
//   - LTI 1.3 (lti13/auth.py): auth_state is the whole validated id_token.
//     The redirect (lti13/handlers.py get_state) is the login-initiation
//     next, else everything after "next=" in target_link_uri, percent-decoded
//     once, else target_link_uri itself unless it ends in "/hub".
package launch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ltigrade/ltigrade/internal/nbgitpuller"
	"github.com/ltigrade/ltigrade/internal/store"
)

// Launch is one LTI launch, the same shape for LTI 1.1 and 1.3.
type Launch struct {
	Username          string
	Version           string // "1.1" or "1.3"
	Platform          string // LTI 1.1: consumer key; LTI 1.3: issuer
	ClientID          string // LTI 1.3 aud (first if list); "" for 1.1
	DeploymentID      string // LTI 1.3 deployment_id claim
	LTIUserID         string // LTI 1.1 user_id; LTI 1.3 sub
	ResourceLinkID    string
	ResourceLinkTitle string
	ContextID         string
	ContextLabel      string
	ContextTitle      string
	Roles             string // comma-joined

	// LTI 1.1 Basic Outcomes
	OutcomeURL          string   // lis_outcome_service_url
	SourcedID           string   // lis_result_sourcedid, byte-for-byte (Moodle's is opaque JSON)
	ResultDataAccepted  []string // Canvas ext_outcome_data_values_accepted, split on ",", e.g. ["text","url"]
	SubmittedAtAccepted bool     // Canvas ext_outcome_submission_submitted_at_accepted == "true"

	// LTI 1.3 AGS endpoint claim
	LineItem  string
	LineItems string
	AGSScopes []string

	NextURL string
	// NextSigned says NextURL came from data the LMS signed: LTI 1.1
	// launch parameters (the launch URL's query is part of the OAuth base
	// string, the body is signed), or LTI 1.3 id_token claims. It is false
	// only for an LTI 1.3 launch whose sole next is the login initiation's,
	// which the browser sends unsigned.
	NextSigned bool
	// UnsignedNext is an LTI 1.3 login-initiation next that disagreed with
	// the signed one and was ignored.
	UnsignedNext string
	Pull         *nbgitpuller.Link // nil when NextURL is not a usable git-pull link
	// PullError says why a git-pull link in NextURL was refused (path
	// tricks, malformed): the launch is kept, without a checkout.
	PullError  string
	LaunchedAt time.Time       // UTC
	AuthState  json.RawMessage // the auth_state object as received, compacted, without oauth_signature
	// Warnings are what the recorder should tell the hub log: a refused
	// link, an ignored unsigned next, a launch time in the future.
	Warnings []string
}

// InvalidError says what is wrong with a launch; callers map it to exit code 2.
// Every error Parse returns is an *InvalidError.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return "launch: " + e.Msg }

func invalid(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

// MaxSize bounds the input: a launch is a few KiB, an id_token rarely more
// than 20.
const MaxSize = 1 << 20

// MaxUsernameLen is the longest username accepted, in bytes.
const MaxUsernameLen = 255

// MaxFutureSkew is how far past the recording time a launched_at may lie
// before it is taken as the recording time: a launch stamped in the future
// (a hub with a wrong clock, a hand-made launch) would otherwise stay its
// session's current launch against every real launch until that date.
const MaxFutureSkew = time.Minute

// LTI 1.3 claim names.
const (
	claimPrefix       = "https://purl.imsglobal.org/spec/lti/claim/"
	claimMessageType  = claimPrefix + "message_type"
	claimVersion      = claimPrefix + "version"
	claimDeploymentID = claimPrefix + "deployment_id"
	claimResourceLink = claimPrefix + "resource_link"
	claimContext      = claimPrefix + "context"
	claimRoles        = claimPrefix + "roles"
	claimCustom       = claimPrefix + "custom"
	claimTargetLink   = claimPrefix + "target_link_uri"
	claimAGSEndpoint  = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
)

// Parse reads one launch. now is the launch time when the input has no
// launched_at.
func Parse(data []byte, now time.Time) (*Launch, error) {
	if len(data) > MaxSize {
		return nil, invalid("input is larger than %d bytes", MaxSize)
	}
	// encoding/json would quietly turn bad bytes into U+FFFD, and the
	// sourcedid must reach the LMS exactly as it came.
	if !utf8.Valid(data) {
		return nil, invalid("input is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, invalid("input is empty")
		}
		return nil, invalid("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("trailing data after the JSON object")
	}
	top, err := object(raw, "input")
	if err != nil {
		return nil, err
	}

	l := &Launch{}
	username, err := top.str("username")
	if err != nil {
		return nil, err
	}
	if l.Username, err = normalizeUsername(username); err != nil {
		return nil, err
	}

	asRaw, ok := top.vals["auth_state"]
	if !ok || isNull(asRaw) {
		return nil, invalid(`"auth_state" is required`)
	}
	as, err := object(asRaw, `"auth_state"`)
	if err != nil {
		return nil, err
	}
	as.name = "auth_state"
	if l.AuthState, err = as.storable(); err != nil {
		return nil, err
	}

	consumerKey, err := top.str("consumer_key")
	if err != nil {
		return nil, err
	}
	nextURL, err := top.str("next_url")
	if err != nil {
		return nil, err
	}
	at, err := top.str("launched_at")
	if err != nil {
		return nil, err
	}
	l.LaunchedAt = now.UTC()
	if top.has("launched_at") {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return nil, invalid(`"launched_at" %q is not an RFC 3339 time`, clip(at))
		}
		l.LaunchedAt = t.UTC()
		if limit := now.UTC().Add(MaxFutureSkew); l.LaunchedAt.After(limit) {
			l.Warnings = append(l.Warnings, fmt.Sprintf("launched_at %s is in the future; recorded as %s",
				l.LaunchedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
			l.LaunchedAt = now.UTC()
		}
	}

	is11, err := looksLTI11(as)
	if err != nil {
		return nil, err
	}
	is13 := as.has("iss") && (as.has(claimMessageType) || as.has(claimVersion))
	var nextField string
	switch {
	case is11 && is13:
		return nil, invalid(`"auth_state" looks like both LTI 1.1 and LTI 1.3`)
	case is11:
		nextField, err = l.fromLTI11(as, consumerKey, nextURL)
	case is13:
		nextField, err = l.fromLTI13(as, nextURL)
	default:
		return nil, invalid(`"auth_state" is neither an LTI 1.1 launch nor LTI 1.3 claims`)
	}
	if err != nil {
		return nil, err
	}

	if l.NextURL != "" {
		p, err := nbgitpuller.Parse(l.NextURL)
		switch {
		case err == nil:
			l.Pull = p
		case !errors.Is(err, nbgitpuller.ErrNotPull):
			// The launch itself is good (the LMS signed it); only what it
			// opened is unusable. Keep it, covering nothing, so sessions
			// list shows it and --launch can still reach it.
			l.PullError = fmt.Sprintf("%s: %v", nextField, err)
			l.Warnings = append(l.Warnings, fmt.Sprintf("launch of %s: nbgitpuller link refused (%s); recorded without a checkout, so it covers no notebook",
				l.Username, l.PullError))
		}
	}
	return l, nil
}

// NormalizeUsername is JupyterHub's normalisation of a user name (trimmed,
// lowercased), with ltigrade's checks: every command that takes a user
// name, from a launch, a flag or a batch row, goes through it so that
// "Alice " and "alice" are one user.
func NormalizeUsername(s string) (string, error) { return normalizeUsername(s) }

// clip keeps error messages readable when the input is megabytes of junk.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return s[:max] + "..."
}

func normalizeUsername(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "":
		return "", invalid(`"username" is required`)
	case len(s) > MaxUsernameLen:
		return "", invalid(`"username" is longer than %d bytes`, MaxUsernameLen)
	case strings.ContainsFunc(s, unicode.IsControl):
		return "", invalid(`"username" contains a control character`)
	case strings.Contains(s, "/"):
		return "", invalid(`"username" %q contains "/"`, clip(s))
	case !utf8.ValidString(s):
		return "", invalid(`"username" is not valid UTF-8`)
	}
	return s, nil
}

func looksLTI11(as *obj) (bool, error) {
	if as.has("resource_link_id") || as.has("lti_message_type") {
		return true, nil
	}
	v, err := as.arg("lti_version")
	return v == "LTI-1p0", err
}

// fromLTI11 fills l from LTI 1.1 launch parameters and says which field the
// next URL came from.
func (l *Launch) fromLTI11(as *obj, consumerKey, nextURL string) (string, error) {
	l.Version = "1.1"
	var err error
	arg := func(key string) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = as.arg(key)
		return v
	}
	l.LTIUserID = arg("user_id")
	l.ResourceLinkID = arg("resource_link_id")
	l.ResourceLinkTitle = arg("resource_link_title")
	l.ContextID = arg("context_id")
	l.ContextLabel = arg("context_label")
	l.ContextTitle = arg("context_title")
	l.Roles = arg("roles")
	l.OutcomeURL = arg("lis_outcome_service_url")
	l.SourcedID = arg("lis_result_sourcedid")
	accepted := arg("ext_outcome_data_values_accepted")
	l.SubmittedAtAccepted = arg("ext_outcome_submission_submitted_at_accepted") == "true"
	oauthKey := arg("oauth_consumer_key")
	customNext := arg("custom_next")
	next := arg("next")
	if err != nil {
		return "", err
	}

	for v := range strings.SplitSeq(accepted, ",") {
		if v = strings.TrimSpace(v); v != "" {
			l.ResultDataAccepted = append(l.ResultDataAccepted, v)
		}
	}

	if InsecureOutcomeURL(l.OutcomeURL) {
		l.Warnings = append(l.Warnings, fmt.Sprintf("launch of %s: outcome service %s is plain http to a host that is not loopback: scores to it travel unencrypted",
			l.Username, clip(l.OutcomeURL)))
	}

	l.Platform = consumerKey
	if strings.TrimSpace(l.Platform) == "" {
		// ltiauthenticator drops oauth_* from auth_state, but a hook that
		// copies the raw request arguments keeps it.
		l.Platform = oauthKey
	}
	switch {
	case strings.TrimSpace(l.Platform) == "":
		return "", invalid(`"consumer_key" is required for LTI 1.1`)
	case strings.TrimSpace(l.ResourceLinkID) == "":
		return "", invalid(`auth_state "resource_link_id" is required for LTI 1.1`)
	case strings.TrimSpace(l.LTIUserID) == "":
		return "", invalid(`auth_state "user_id" is required for LTI 1.1`)
	}

	var nextField string
	l.NextURL, nextField = pick(
		candidate{`"next_url"`, nextURL},
		candidate{`auth_state "custom_next"`, customNext},
		candidate{`auth_state "next"`, next},
	)
	l.NextSigned = true
	return nextField, nil
}

// fromLTI13 fills l from id_token claims and says which field the next URL
// came from.
func (l *Launch) fromLTI13(as *obj, nextURL string) (string, error) {
	l.Version = "1.3"
	var err error
	if l.Platform, err = as.str("iss"); err != nil {
		return "", err
	}
	if l.LTIUserID, err = as.str("sub"); err != nil {
		return "", err
	}
	if l.ClientID, err = as.strOrFirst("aud"); err != nil {
		return "", err
	}
	if l.DeploymentID, err = as.str(claimDeploymentID); err != nil {
		return "", err
	}
	if strings.TrimSpace(l.Platform) == "" {
		return "", invalid(`auth_state "iss" is required for LTI 1.3`)
	}
	if strings.TrimSpace(l.LTIUserID) == "" {
		return "", invalid(`auth_state "sub" is required for LTI 1.3`)
	}

	rl, err := as.sub(claimResourceLink)
	if err != nil {
		return "", err
	}
	if l.ResourceLinkID, err = rl.str("id"); err != nil {
		return "", err
	}
	if strings.TrimSpace(l.ResourceLinkID) == "" {
		return "", invalid(`auth_state %q "id" is required for LTI 1.3`, claimResourceLink)
	}
	if l.ResourceLinkTitle, err = rl.str("title"); err != nil {
		return "", err
	}

	ctx, err := as.sub(claimContext)
	if err != nil {
		return "", err
	}
	if l.ContextID, err = ctx.str("id"); err != nil {
		return "", err
	}
	if l.ContextLabel, err = ctx.str("label"); err != nil {
		return "", err
	}
	if l.ContextTitle, err = ctx.str("title"); err != nil {
		return "", err
	}
	roles, err := as.strs(claimRoles)
	if err != nil {
		return "", err
	}
	l.Roles = strings.Join(roles, ",")

	ags, err := as.sub(claimAGSEndpoint)
	if err != nil {
		return "", err
	}
	if l.LineItem, err = ags.str("lineitem"); err != nil {
		return "", err
	}
	if l.LineItems, err = ags.str("lineitems"); err != nil {
		return "", err
	}
	if l.AGSScopes, err = ags.strs("scope"); err != nil {
		return "", err
	}

	next, err := as.str("next")
	if err != nil {
		return "", err
	}
	customNextTop, err := as.str("custom_next")
	if err != nil {
		return "", err
	}
	target, err := as.str(claimTargetLink)
	if err != nil {
		return "", err
	}
	custom, err := as.sub(claimCustom)
	if err != nil {
		return "", err
	}
	customNext, err := custom.str("next")
	if err != nil {
		return "", err
	}
	// Only the id_token is signed; the hook's next_url is the login
	// initiation's next, which the browser sent unsigned and a student can
	// edit (replay Homework 1's login with Homework 2's next). Signed
	// places first: target_link_uri (where ltiauthenticator itself goes
	// without a login next), a custom claim, then other top-level claims.
	signed, field := pick(
		candidate{fmt.Sprintf("auth_state %q", claimTargetLink), nextFromTargetLink(target)},
		candidate{fmt.Sprintf(`auth_state %q "next"`, claimCustom), customNext},
		candidate{`auth_state "next"`, next},
		candidate{`auth_state "custom_next"`, customNextTop},
	)
	unsigned := strings.TrimSpace(nextURL)
	switch {
	case signed != "":
		l.NextURL, l.NextSigned = signed, true
		if unsigned != "" && !sameLink(unsigned, signed) {
			l.UnsignedNext = unsigned
			l.Warnings = append(l.Warnings, fmt.Sprintf("LTI 1.3 launch of %s: the login's unsigned next (opens %s) disagrees with the signed one in %s (opens %s); kept the signed one",
				l.Username, opens(unsigned), field, opens(signed)))
		}
		return field, nil
	case unsigned != "":
		l.NextURL, l.NextSigned = unsigned, false
		return `"next_url" (unsigned)`, nil
	}
	l.NextSigned = true
	return "", nil
}

// opens names what a next URL opens, for messages.
func opens(next string) string {
	p, err := nbgitpuller.Parse(next)
	switch {
	case err != nil:
		return "no usable git-pull link: " + clip(next)
	case p.Opened == "":
		return "the checkout " + p.TargetPath
	}
	return p.Opened
}

// sameLink reports whether two next URLs open the same checkout and path,
// however each was encoded or wrapped.
func sameLink(a, b string) bool {
	if a == b {
		return true
	}
	pa, errA := nbgitpuller.Parse(a)
	pb, errB := nbgitpuller.Parse(b)
	if errA != nil || errB != nil {
		return false
	}
	return pa.Repo == pb.Repo && pa.TargetPath == pb.TargetPath && pa.Opened == pb.Opened &&
		pa.OpenedFile == pb.OpenedFile && pa.OpenedUnderParent == pb.OpenedUnderParent
}

// nextFromTargetLink follows ltiauthenticator's get_state: everything after
// the first "next=" (any case), decoded once. Unlike ltiauthenticator it
// only uses a target_link_uri without next= when it is itself a git-pull
// link, because otherwise it just names the hub and tells us nothing.
func nextFromTargetLink(t string) string {
	if t == "" {
		return ""
	}
	if strings.Contains(t, "next") {
		if i := strings.Index(strings.ToLower(t), "next="); i >= 0 {
			if v, err := urlUnquote(t[i+len("next="):]); err == nil {
				return v
			}
			return ""
		}
		return ""
	}
	if _, err := nbgitpuller.Parse(t); err == nil {
		return t
	}
	return ""
}

// urlUnquote decodes %XX like Python's unquote, keeping malformed escapes.
func urlUnquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	out := b.String()
	if !utf8.ValidString(out) {
		return "", errors.New("not valid UTF-8")
	}
	return out, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

type candidate struct{ field, value string }

func pick(cs ...candidate) (string, string) {
	for _, c := range cs {
		if v := strings.TrimSpace(c.value); v != "" {
			return v, c.field
		}
	}
	return "", ""
}

// obj is a decoded JSON object that remembers its key order, so the stored
// auth_state keeps the platform's order.
type obj struct {
	name string // how errors name it
	keys []string
	vals map[string]json.RawMessage
}

// object decodes raw as a JSON object. Duplicate keys are rejected because
// encoding/json would silently keep the last one, and two different
// sourcedids or user ids in one launch are a forgery, not a typo.
func object(raw json.RawMessage, name string) (*obj, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, invalid("invalid JSON in %s: %v", name, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, invalid("%s must be a JSON object", name)
	}
	o := &obj{name: name, vals: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("invalid JSON in %s: %v", name, err)
		}
		k, ok := tok.(string)
		if !ok {
			return nil, invalid("invalid JSON in %s: key is not a string", name)
		}
		if _, dup := o.vals[k]; dup {
			return nil, invalid("%s has key %q twice", name, k)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, invalid("invalid JSON in %s: %v", name, err)
		}
		o.keys = append(o.keys, k)
		o.vals[k] = v
	}
	return o, nil
}

func isNull(v json.RawMessage) bool { return string(v) == "null" }

func (o *obj) has(key string) bool {
	v, ok := o.vals[key]
	return ok && !isNull(v)
}

func (o *obj) field(key string) string {
	if o.name == "input" {
		return fmt.Sprintf("%q", key)
	}
	return fmt.Sprintf("%s %q", o.name, key)
}

// str reads an optional string; absent and null read as "".
func (o *obj) str(key string) (string, error) {
	v, ok := o.vals[key]
	if !ok || isNull(v) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", invalid("%s must be a string", o.field(key))
	}
	return s, nil
}

// arg reads an LTI 1.1 launch argument: a string, or tornado's argument
// list, of which ltiauthenticator too uses the first value.
func (o *obj) arg(key string) (string, error) {
	v, ok := o.vals[key]
	if !ok || isNull(v) {
		return "", nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	var list []string
	if json.Unmarshal(v, &list) != nil || len(list) == 0 {
		return "", invalid("%s must be a string or a non-empty list of strings", o.field(key))
	}
	return list[0], nil
}

// strOrFirst reads a string or the first of a list of strings, the two
// shapes the aud claim takes.
func (o *obj) strOrFirst(key string) (string, error) {
	v, ok := o.vals[key]
	if !ok || isNull(v) {
		return "", nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	var list []string
	if json.Unmarshal(v, &list) != nil {
		return "", invalid("%s must be a string or a list of strings", o.field(key))
	}
	if len(list) == 0 {
		return "", nil
	}
	return list[0], nil
}

func (o *obj) strs(key string) ([]string, error) {
	v, ok := o.vals[key]
	if !ok || isNull(v) {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, invalid("%s must be a list of strings", o.field(key))
	}
	return list, nil
}

// sub reads an optional nested object; absent reads as an empty one so
// callers need no nil checks.
func (o *obj) sub(key string) (*obj, error) {
	name := o.field(key)
	v, ok := o.vals[key]
	if !ok || isNull(v) {
		return &obj{name: name, vals: map[string]json.RawMessage{}}, nil
	}
	return object(v, name)
}

// storable is auth_state compacted. oauth_signature is dropped: it is no
// secret, but together with the other oauth_* values it replays the launch
// within its timestamp window, and nothing downstream needs it. A consumer
// secret never belongs in auth_state; should one appear it goes too.
func (o *obj) storable() (json.RawMessage, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for _, k := range o.keys {
		if k == "oauth_signature" || k == "oauth_consumer_secret" {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, invalid("%s: %v", o.field(k), err)
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(o.vals[k])
	}
	b.WriteByte('}')
	var out bytes.Buffer
	if err := json.Compact(&out, b.Bytes()); err != nil {
		return nil, invalid("invalid JSON in %s: %v", o.name, err)
	}
	return out.Bytes(), nil
}

// StoreLaunch flattens l into the row the store keeps; parent is the hub's
// NBGITPULLER_PARENTPATH, under which nbgitpuller puts checkouts. record,
// the spool, import and the benchmark seeder all map launches through it.
func (l *Launch) StoreLaunch(parent string) *store.Launch {
	sl := &store.Launch{
		Username: l.Username, Version: l.Version, Platform: l.Platform, ClientID: l.ClientID,
		DeploymentID: l.DeploymentID, LTIUserID: l.LTIUserID, ResourceLinkID: l.ResourceLinkID,
		ResourceLinkTitle: l.ResourceLinkTitle, ContextID: l.ContextID, ContextLabel: l.ContextLabel,
		ContextTitle: l.ContextTitle, Roles: l.Roles, OutcomeURL: l.OutcomeURL, SourcedID: l.SourcedID,
		ResultDataAccepted: l.ResultDataAccepted, SubmittedAtAccepted: l.SubmittedAtAccepted,
		LineItem: l.LineItem, LineItems: l.LineItems, AGSScopes: l.AGSScopes,
		NextURL: l.NextURL, NextSigned: l.NextSigned, UnsignedNext: l.UnsignedNext, PullError: l.PullError,
		LaunchedAt: l.LaunchedAt, AuthState: l.AuthState,
	}
	if p := l.Pull; p != nil {
		sl.Repo = p.Repo
		sl.Checkout = p.Checkout(parent)
		sl.Opened = p.OpenedPath(parent)
		sl.OpenedFile = p.OpenedFile
	}
	return sl
}

// InsecureOutcomeURL reports whether an LTI 1.1 outcome service URL is
// plain http to a host that is not loopback: the OAuth 1.0a signature
// protects the score from tampering, but not from being read, and some
// LMS test set-ups are left that way by mistake.
func InsecureOutcomeURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "http") {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}
