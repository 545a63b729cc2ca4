package lmssim

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// LTI 1.3 claim names (IMS LTI 1.3, AGS 2.0, NRPS 2.0).
const (
	ClaimPrefix        = "https://purl.imsglobal.org/spec/lti/claim/"
	ClaimMessageType   = ClaimPrefix + "message_type"
	ClaimVersion       = ClaimPrefix + "version"
	ClaimDeploymentID  = ClaimPrefix + "deployment_id"
	ClaimTargetLinkURI = ClaimPrefix + "target_link_uri"
	ClaimResourceLink  = ClaimPrefix + "resource_link"
	ClaimContext       = ClaimPrefix + "context"
	ClaimRoles         = ClaimPrefix + "roles"
	ClaimCustom        = ClaimPrefix + "custom"
	ClaimToolPlatform  = ClaimPrefix + "tool_platform"
	ClaimAGS           = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
	ClaimNRPS          = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
)

// membershipRole is the LIS vocabulary that short role names expand in.
const membershipRole = "http://purl.imsglobal.org/vocab/lis/v2/membership#"

// DefaultAGSScopes are the grade-service scopes a launch grants unless
// LaunchBuilder.AGSScopes says otherwise: all four, as Moodle's "grade sync
// and column management" does.
var DefaultAGSScopes = []string{AGSScopeLineItem, AGSScopeLineItemReadOnly, AGSScopeResultReadOnly, AGSScopeScore}

// roles are the student's short or full role names, Learner by default.
func (s Student) roles() []string {
	if len(s.Roles) == 0 {
		return []string{"Learner"}
	}
	return s.Roles
}

// RoleURIs are the student's roles as LIS URIs, the LTI 1.3 and NRPS form.
func (s Student) RoleURIs() []string {
	var out []string
	for _, r := range s.roles() {
		out = append(out, RoleURI(r))
	}
	return out
}

// RoleURI expands a short context role ("Learner") to its LIS URI; a URI
// stays as it is.
func RoleURI(r string) string {
	if strings.Contains(r, "://") || strings.HasPrefix(r, "urn:") {
		return r
	}
	return membershipRole + r
}

// email is the student's email, made up from the name when none is set.
func (s Student) email() string {
	return or(s.Email, s.Name+"@"+EmailDomain)
}

// Sub is the student's LTI 1.3 subject (user id).
func (s Student) Sub() string { return or(s.UserID, s.Name) }

// TargetLinkURI is the target_link_uri of an assignment's LTI 1.3 link:
// ltiauthenticator's login URL at the hub with the nbgitpuller link in
// next=, so the link is in the signed id_token (docs/lti13.md, "The link
// of each assignment") and ltiauthenticator also lands there without a
// login next.
func (b *LaunchBuilder) TargetLinkURI(assignment string) (string, error) {
	for _, a := range b.Course.Assignments {
		if a.ID == assignment {
			return b.targetLinkURI(a)
		}
	}
	return "", fmt.Errorf("assignment %q: %w", assignment, ErrUnknown)
}

func (b *LaunchBuilder) targetLinkURI(a Assignment) (string, error) {
	if b.HubURL == "" {
		return "", errors.New("no hub URL for the target link")
	}
	hub, err := parseHubURL(b.HubURL)
	if err != nil {
		return "", err
	}
	link, _, err := b.pullLink(a)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(hub.String(), "/") + "/hub/lti13/oauth_login?next=" + url.QueryEscape(link), nil
}

// Validate13 checks what Claims needs beyond Validate: the hub and the
// platform's side of the registration.
func (b *LaunchBuilder) Validate13() error {
	if err := b.Validate(); err != nil {
		return err
	}
	if b.HubURL == "" {
		return errors.New("no hub URL for the target links")
	}
	for _, f := range []struct{ what, v string }{{"issuer", b.Issuer}, {"client id", b.ClientID}, {"deployment id", b.DeploymentID}} {
		if err := checkText(f.what, f.v, true); err != nil {
			return err
		}
	}
	return nil
}

// Claims returns the message claims of a student's LTI 1.3 resource link
// launch of an assignment, what the platform signs into the id_token
// (without iat, exp and nonce, which belong to one login): the resource
// link, context, roles, the AGS endpoint (lineitems, the assignment's
// lineitem unless NoLineItemClaim, the scopes), the NRPS claim, the
// deployment, target_link_uri with the nbgitpuller link as next=, and the
// custom claim (the assignment's Custom plus "username", the student's
// hub name, for ltiauthenticator's username_key = "custom_username").
func (b *LaunchBuilder) Claims(student, assignment string) (map[string]any, error) {
	if err := b.Validate13(); err != nil {
		return nil, err
	}
	s, a, err := b.find(student, assignment)
	if err != nil {
		return nil, err
	}
	target, err := b.targetLinkURI(a)
	if err != nil {
		return nil, err
	}
	c := b.Course
	custom := map[string]string{"username": s.Name}
	for k, v := range a.Custom {
		custom[k] = v
	}
	claims := map[string]any{
		"iss":              b.Issuer,
		"aud":              b.ClientID,
		"azp":              b.ClientID,
		"sub":              s.Sub(),
		"name":             or(s.FullName, s.Name),
		"email":            s.email(),
		ClaimMessageType:   "LtiResourceLinkRequest",
		ClaimVersion:       "1.3.0",
		ClaimDeploymentID:  b.DeploymentID,
		ClaimTargetLinkURI: target,
		ClaimResourceLink:  map[string]string{"id": or(a.LinkID, a.ID), "title": or(a.Title, a.ID)},
		ClaimContext: map[string]any{"id": c.ID, "label": or(c.Label, c.ID), "title": or(c.Title, c.ID),
			"type": []string{"http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"}},
		ClaimRoles:  s.RoleURIs(),
		ClaimCustom: custom,
		ClaimToolPlatform: map[string]string{"guid": b.Issuer, "name": "ltigrade sandbox",
			"product_family_code": "ltigrade-sandbox"},
	}
	if b.LineItemsURL != "" {
		scopes := b.AGSScopes
		if scopes == nil {
			scopes = DefaultAGSScopes
		}
		ep := map[string]any{"scope": scopes, "lineitems": b.LineItemsURL}
		if li := b.LineItemURLs[a.ID]; li != "" && !a.NoLineItemClaim {
			ep["lineitem"] = li
		}
		claims[ClaimAGS] = ep
	}
	if b.MembershipsURL != "" {
		claims[ClaimNRPS] = map[string]any{"context_memberships_url": b.MembershipsURL, "service_versions": []string{"2.0"}}
	}
	return claims, nil
}
