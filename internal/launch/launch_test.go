package launch

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ltigrade/ltigrade/internal/nbgitpuller"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.FixedZone("CET", 3600))

const moodleSourcedID = `{"data":{"instanceid":"9","userid":"42","typeid":"3","launchid":1187462025},"hash":"0e7c2b1f9f4e3a5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d"}`

func TestTestdata(t *testing.T) {
	tests := []struct {
		file string
		want Launch
	}{
		{
			file: "canvas-lti11.json",
			want: Launch{
				Username: "1234567", Version: "1.1", Platform: "ds100-canvas",
				LTIUserID:      "535fa085f22b4655f48cd5a36a9215f64c062838",
				ResourceLinkID: "a81e6c5f0b7e1c7c4e0a6e1f2b3c4d5e6f708192", ResourceLinkTitle: "Homework 1",
				ContextID: "4dde05e8ca1973bcca9bffc13e1548820eee93a3", ContextLabel: "DS100", ContextTitle: "Principles of Data Science",
				Roles:               "Learner",
				OutcomeURL:          "https://canvas.example.edu/api/lti/v1/tools/77/grade_passback",
				SourcedID:           "77-1001-2002-1234567-0f4bcd1e3b5a9e7c0c4d0b2f7a6f8c1d2e3f4a5b",
				ResultDataAccepted:  []string{"url", "text"},
				SubmittedAtAccepted: true,
				NextURL:             "/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Fdata-8%2Fmaterials-fa17&urlpath=tree%2Fmaterials-fa17%2Fhw%2Fhw1%2Fhw1.ipynb&branch=main",
				Pull: &nbgitpuller.Link{Repo: "https://github.com/data-8/materials-fa17", Branch: "main", TargetPath: "materials-fa17",
					URLPath: "tree/materials-fa17/hw/hw1/hw1.ipynb", Opened: "materials-fa17/hw/hw1/hw1.ipynb", OpenedFile: true},
				NextSigned: true,
				LaunchedAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
			},
		},
		{
			file: "moodle-lti11.json",
			want: Launch{
				Username: "jsmith", Version: "1.1", Platform: "moodle-prod", LTIUserID: "42",
				ResourceLinkID: "9", ResourceLinkTitle: "Lab 3: loops",
				ContextID: "17", ContextLabel: "PY101", ContextTitle: "Introduction to Python",
				Roles:      "Learner",
				OutcomeURL: "https://moodle.example.ac.uk/mod/lti/service.php",
				SourcedID:  moodleSourcedID,
				NextURL:    "/hub/lti/launch?next=%2Fhub%2Fuser-redirect%2Fgit-pull%3Frepo%3Dhttps%253A%252F%252Fgit.example.ac.uk%252Fpy101%252Flabs.git%26urlpath%3Dlab%252Ftree%252Flabs.git%252Flab3%252Floops.ipynb%253Fautodecode%26branch%3Dmain",
				Pull: &nbgitpuller.Link{Repo: "https://git.example.ac.uk/py101/labs.git", Branch: "main", TargetPath: "labs.git",
					URLPath: "lab/tree/labs.git/lab3/loops.ipynb?autodecode", Opened: "labs.git/lab3/loops.ipynb", OpenedFile: true},
				NextSigned: true,
				LaunchedAt: time.Date(2026, 11, 25, 10, 30, 5, 250e6, time.UTC),
			},
		},
		{
			file: "canvas-lti13.json",
			want: Launch{
				Username: "alice@example.edu", Version: "1.3", Platform: "https://canvas.instructure.com",
				ClientID: "10000000000042", DeploymentID: "12:4dde05e8ca1973bcca9bffc13e1548820eee93a3",
				LTIUserID:      "535fa085-f22b-4655-f48c-d5a36a9215f6",
				ResourceLinkID: "6b2d7c8e-6a1d-4a55-9f0e-3f5b8e2e1c11", ResourceLinkTitle: "Project 2: Spam/Ham",
				ContextID: "4dde05e8ca1973bcca9bffc13e1548820eee93a3", ContextLabel: "DS100", ContextTitle: "Principles of Data Science",
				Roles:     "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student,http://purl.imsglobal.org/vocab/lis/v2/membership#Learner,http://purl.imsglobal.org/vocab/lis/v2/system/person#User",
				LineItem:  "https://canvas.example.edu/api/lti/courses/1001/line_items/31",
				LineItems: "https://canvas.example.edu/api/lti/courses/1001/line_items",
				AGSScopes: []string{
					"https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
					"https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
					"https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
					"https://purl.imsglobal.org/spec/lti-ags/scope/score",
				},
				NextURL: "/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Fds-100%2Fsp27&urlpath=lab%2Ftree%2Fsp27%2Fproj2%2Fproj2.ipynb",
				Pull: &nbgitpuller.Link{Repo: "https://github.com/ds-100/sp27", TargetPath: "sp27",
					URLPath: "lab/tree/sp27/proj2/proj2.ipynb", Opened: "sp27/proj2/proj2.ipynb", OpenedFile: true},
				NextSigned: true,
				LaunchedAt: now.UTC(),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(data, now)
			if err != nil {
				t.Fatal(err)
			}
			checkAuthState(t, got.AuthState, data)
			got.AuthState = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
				if got.Pull != nil && tt.want.Pull != nil {
					t.Errorf("Pull got %+v\n     want %+v", *got.Pull, *tt.want.Pull)
				}
			}
		})
	}
}

// checkAuthState says stored is input's auth_state less oauth_signature.
func checkAuthState(t *testing.T, stored json.RawMessage, input []byte) {
	t.Helper()
	var in struct {
		AuthState map[string]any `json:"auth_state"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		t.Fatal(err)
	}
	delete(in.AuthState, "oauth_signature")
	var got map[string]any
	if err := json.Unmarshal(stored, &got); err != nil {
		t.Fatalf("stored auth_state %s: %v", stored, err)
	}
	if !reflect.DeepEqual(got, in.AuthState) {
		t.Errorf("stored auth_state differs:\n got %v\nwant %v", got, in.AuthState)
	}
	if strings.Contains(string(stored), `"oauth_signature":`) {
		t.Errorf("stored auth_state keeps oauth_signature: %s", stored)
	}
	if strings.ContainsAny(string(stored), "\n\t") {
		t.Errorf("stored auth_state is not compact: %s", stored)
	}
}

// lti11 is a minimal valid LTI 1.1 launch with extra auth_state fields
// spliced in.
func lti11(extraTop, extraState string) string {
	return `{"username":"alice","consumer_key":"key",` + extraTop +
		`"auth_state":{` + extraState + `"resource_link_id":"rl1","user_id":"u1","lti_version":"LTI-1p0"}}`
}

func lti13(extraTop, extraState string) string {
	return `{"username":"alice",` + extraTop + `"auth_state":{` + extraState + `"iss":"https://moodle.example.org","aud":["client-1","other"],"sub":"7",` +
		`"https://purl.imsglobal.org/spec/lti/claim/message_type":"LtiResourceLinkRequest",` +
		`"https://purl.imsglobal.org/spec/lti/claim/deployment_id":"3",` +
		`"https://purl.imsglobal.org/spec/lti/claim/resource_link":{"id":"rl9","title":"Quiz"}}}`
}

func TestParseCases(t *testing.T) {
	const pull = "/hub/user-redirect/git-pull?repo=https://github.com/org/course&urlpath=tree/course/a.ipynb"
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, l *Launch)
	}{
		{"lti11 minimal, no outcomes, no next", lti11("", ""), func(t *testing.T, l *Launch) {
			if l.Version != "1.1" || l.Platform != "key" || l.LTIUserID != "u1" || l.ResourceLinkID != "rl1" ||
				l.OutcomeURL != "" || l.NextURL != "" || l.Pull != nil || l.ResultDataAccepted != nil || !l.LaunchedAt.Equal(now) ||
				l.LaunchedAt.Location() != time.UTC {
				t.Errorf("%+v", *l)
			}
		}},
		{"lti11 recognised by resource_link_id alone",
			`{"username":"a","consumer_key":"k","auth_state":{"resource_link_id":"r","user_id":"u"}}`,
			func(t *testing.T, l *Launch) {
				if l.Version != "1.1" {
					t.Errorf("Version %q", l.Version)
				}
			}},
		{"lti11 list-valued arguments", `{"username":"a","consumer_key":"k","auth_state":{"resource_link_id":["r","ignored"],"user_id":["u"],"lti_message_type":["basic-lti-launch-request"],"roles":["Instructor,Learner"],"lis_result_sourcedid":["s"]}}`,
			func(t *testing.T, l *Launch) {
				if l.ResourceLinkID != "r" || l.LTIUserID != "u" || l.Roles != "Instructor,Learner" || l.SourcedID != "s" {
					t.Errorf("%+v", *l)
				}
			}},
		{"lti11 oauth_consumer_key fallback", `{"username":"a","auth_state":{"oauth_consumer_key":["k2"],"oauth_signature":"sig","resource_link_id":"r","user_id":"u"}}`,
			func(t *testing.T, l *Launch) {
				if l.Platform != "k2" || strings.Contains(string(l.AuthState), "sig") || !strings.Contains(string(l.AuthState), "oauth_consumer_key") {
					t.Errorf("Platform %q AuthState %s", l.Platform, l.AuthState)
				}
			}},
		{"lti11 consumer_key wins over oauth_consumer_key", lti11("", `"oauth_consumer_key":"other",`), func(t *testing.T, l *Launch) {
			if l.Platform != "key" {
				t.Errorf("Platform %q", l.Platform)
			}
		}},
		{"lti11 canvas outcome extensions", lti11("", `"ext_outcome_data_values_accepted":" text , url ,,","ext_outcome_submission_submitted_at_accepted":"false",`),
			func(t *testing.T, l *Launch) {
				if !reflect.DeepEqual(l.ResultDataAccepted, []string{"text", "url"}) || l.SubmittedAtAccepted {
					t.Errorf("%q %v", l.ResultDataAccepted, l.SubmittedAtAccepted)
				}
			}},
		{"lti11 sourcedid kept byte-for-byte", lti11("", `"lis_result_sourcedid":`+mustJSON(" "+moodleSourcedID+" \u00e9\\</>&")+`,`),
			func(t *testing.T, l *Launch) {
				if l.SourcedID != " "+moodleSourcedID+" \u00e9\\</>&" {
					t.Errorf("SourcedID %q", l.SourcedID)
				}
			}},
		{"next_url wins", lti11(`"next_url":"`+pull+`",`, `"custom_next":"/hub/home","next":"/hub/x",`), func(t *testing.T, l *Launch) {
			if l.NextURL != pull || l.Pull == nil || l.Pull.Opened != "course/a.ipynb" {
				t.Errorf("NextURL %q Pull %+v", l.NextURL, l.Pull)
			}
		}},
		{"lti11 custom_next wins over next, like ltiauthenticator", lti11("", `"next":"/hub/home","custom_next":"`+pull+`",`), func(t *testing.T, l *Launch) {
			if l.NextURL != pull || l.Pull == nil {
				t.Errorf("NextURL %q", l.NextURL)
			}
		}},
		{"lti11 next fallback", lti11(`"next_url":"  ",`, `"next":"`+pull+`",`), func(t *testing.T, l *Launch) {
			if l.NextURL != pull {
				t.Errorf("NextURL %q", l.NextURL)
			}
		}},
		{"next that is no git-pull link", lti11(`"next_url":"/hub/home",`, ""), func(t *testing.T, l *Launch) {
			if l.NextURL != "/hub/home" || l.Pull != nil {
				t.Errorf("NextURL %q Pull %+v", l.NextURL, l.Pull)
			}
		}},
		{"launched_at with offset to UTC", lti11(`"launched_at":"2026-11-25T11:00:00.5+01:00",`, ""), func(t *testing.T, l *Launch) {
			if !l.LaunchedAt.Equal(time.Date(2026, 11, 25, 10, 0, 0, 5e8, time.UTC)) || l.LaunchedAt.Location() != time.UTC {
				t.Errorf("LaunchedAt %v", l.LaunchedAt)
			}
		}},
		{"null optional fields are absent", lti11(`"launched_at":null,"next_url":null,`, `"roles":null,`), func(t *testing.T, l *Launch) {
			if !l.LaunchedAt.Equal(now) || l.NextURL != "" || l.Roles != "" {
				t.Errorf("%+v", *l)
			}
		}},
		{"unknown keys ignored", lti11(`"extra":{"deep":[1,2,{"x":null}]},"hub":5,`, ""), nil},
		{"username trimmed and lowercased", `{"username":" \tÉlodie.Dupont@Example.ORG\n","consumer_key":"k","auth_state":{"resource_link_id":"r","user_id":"u"}}`,
			func(t *testing.T, l *Launch) {
				if l.Username != "élodie.dupont@example.org" {
					t.Errorf("Username %q", l.Username)
				}
			}},
		{"username of 255 bytes", `{"username":"` + strings.Repeat("a", 255) + `","consumer_key":"k","auth_state":{"resource_link_id":"r","user_id":"u"}}`, nil},
		{"lti13 minimal, aud list, no AGS", lti13("", ""), func(t *testing.T, l *Launch) {
			if l.Version != "1.3" || l.Platform != "https://moodle.example.org" || l.ClientID != "client-1" || l.DeploymentID != "3" ||
				l.LTIUserID != "7" || l.ResourceLinkID != "rl9" || l.ResourceLinkTitle != "Quiz" ||
				l.LineItem != "" || l.LineItems != "" || l.AGSScopes != nil || l.Roles != "" {
				t.Errorf("%+v", *l)
			}
		}},
		{"lti13 AGS without lineitem", lti13("", `"https://purl.imsglobal.org/spec/lti-ags/claim/endpoint":{"scope":["https://purl.imsglobal.org/spec/lti-ags/scope/score"],"lineitems":"https://moodle.example.org/mod/lti/services.php/2/lineitems?type_id=1"},`),
			func(t *testing.T, l *Launch) {
				if l.LineItem != "" || l.LineItems != "https://moodle.example.org/mod/lti/services.php/2/lineitems?type_id=1" ||
					!reflect.DeepEqual(l.AGSScopes, []string{"https://purl.imsglobal.org/spec/lti-ags/scope/score"}) {
					t.Errorf("%+v", *l)
				}
			}},
		{"lti13 recognised by version claim", `{"username":"a","auth_state":{"iss":"i","sub":"s","https://purl.imsglobal.org/spec/lti/claim/version":"1.3.0","https://purl.imsglobal.org/spec/lti/claim/resource_link":{"id":"r"}}}`,
			func(t *testing.T, l *Launch) {
				if l.Version != "1.3" || l.ClientID != "" {
					t.Errorf("%+v", *l)
				}
			}},
		{"lti13 aud string", `{"username":"a","auth_state":{"aud":"c","iss":"i","sub":"s","https://purl.imsglobal.org/spec/lti/claim/version":"1.3.0","https://purl.imsglobal.org/spec/lti/claim/resource_link":{"id":"r"}}}`,
			func(t *testing.T, l *Launch) {
				if l.ClientID != "c" {
					t.Errorf("ClientID %q", l.ClientID)
				}
			}},
		{"lti13 next from target_link_uri", lti13("", `"https://purl.imsglobal.org/spec/lti/claim/target_link_uri":"https://hub/hub/lti13/oauth_login?context=next&NEXT=%2Fhub%2Fuser-redirect%2Fgit-pull%3Frepo%3Dr%26urlpath%3Dtree%2Fr%2Fa.py",`),
			func(t *testing.T, l *Launch) {
				if l.NextURL != "/hub/user-redirect/git-pull?repo=r&urlpath=tree/r/a.py" || l.Pull == nil || l.Pull.Opened != "r/a.py" {
					t.Errorf("NextURL %q Pull %+v", l.NextURL, l.Pull)
				}
			}},
		{"lti13 target_link_uri that is a git-pull link", lti13("", `"https://purl.imsglobal.org/spec/lti/claim/target_link_uri":"https://hub/hub/user-redirect/git-pull?repo=r",`),
			func(t *testing.T, l *Launch) {
				if l.NextURL != "https://hub/hub/user-redirect/git-pull?repo=r" || l.Pull == nil {
					t.Errorf("NextURL %q", l.NextURL)
				}
			}},
		{"lti13 target_link_uri with upper-case NEXT only is ignored, as upstream",
			lti13("", `"https://purl.imsglobal.org/spec/lti/claim/target_link_uri":"https://hub/hub/lti13/oauth_login?NEXT=%2Fgit-pull%3Frepo%3Dr",`),
			func(t *testing.T, l *Launch) {
				if l.NextURL != "" {
					t.Errorf("NextURL %q", l.NextURL)
				}
			}},
		{"lti13 plain target_link_uri gives no next", lti13("", `"https://purl.imsglobal.org/spec/lti/claim/target_link_uri":"https://hub.example.org",`),
			func(t *testing.T, l *Launch) {
				if l.NextURL != "" {
					t.Errorf("NextURL %q", l.NextURL)
				}
			}},
		{"lti13 custom next", lti13("", `"https://purl.imsglobal.org/spec/lti/claim/custom":{"next":"`+pull+`"},`),
			func(t *testing.T, l *Launch) {
				if l.NextURL != pull || l.Pull == nil || !l.NextSigned {
					t.Errorf("NextURL %q signed %v", l.NextURL, l.NextSigned)
				}
			}},
		// §3 of issue 8: the hook's next_url for LTI 1.3 is the login
		// initiation's next, unsigned. A replayed Homework 1 login with
		// Homework 2's next must keep Homework 1's signed link.
		{"lti13 signed next wins over a disagreeing unsigned one",
			lti13(`"next_url":"/hub/user-redirect/git-pull?repo=https://github.com/org/course&urlpath=tree/course/hw2/hw2.ipynb",`,
				`"https://purl.imsglobal.org/spec/lti/claim/target_link_uri":"https://hub/hub/lti13/launch?next=%2Fhub%2Fuser-redirect%2Fgit-pull%3Frepo%3Dhttps%253A%252F%252Fgithub.com%252Forg%252Fcourse%26urlpath%3Dtree%252Fcourse%252Fhw1%252Fhw1.ipynb",`),
			func(t *testing.T, l *Launch) {
				if l.Pull == nil || l.Pull.Opened != "course/hw1/hw1.ipynb" || !l.NextSigned ||
					!strings.Contains(l.UnsignedNext, "hw2") || len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0], "disagrees") {
					t.Errorf("Pull %+v signed %v unsigned %q warnings %q", l.Pull, l.NextSigned, l.UnsignedNext, l.Warnings)
				}
			}},
		{"lti13 unsigned next that agrees, encoded differently",
			lti13(`"next_url":"/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Forg%2Fcourse&urlpath=tree%2Fcourse%2Fa.ipynb",`,
				`"https://purl.imsglobal.org/spec/lti/claim/custom":{"next":"`+pull+`"},`),
			func(t *testing.T, l *Launch) {
				if l.NextURL != pull || !l.NextSigned || l.UnsignedNext != "" || len(l.Warnings) != 0 {
					t.Errorf("NextURL %q signed %v unsigned %q warnings %q", l.NextURL, l.NextSigned, l.UnsignedNext, l.Warnings)
				}
			}},
		{"lti13 only an unsigned next: kept, marked unsigned", lti13(`"next_url":"`+pull+`",`, ""),
			func(t *testing.T, l *Launch) {
				if l.NextURL != pull || l.Pull == nil || l.NextSigned {
					t.Errorf("NextURL %q signed %v", l.NextURL, l.NextSigned)
				}
			}},
		{"lti11 next_url is signed (part of the launch)", lti11(`"next_url":"`+pull+`",`, ""),
			func(t *testing.T, l *Launch) {
				if !l.NextSigned || l.Pull == nil {
					t.Errorf("signed %v Pull %+v", l.NextSigned, l.Pull)
				}
			}},
		// §4: a refused link keeps the launch, without a checkout, and says so.
		{"git-pull path trick: recorded without checkout", lti11(`"next_url":"/hub/user-redirect/git-pull?repo=r&targetpath=../../etc",`, ""),
			func(t *testing.T, l *Launch) {
				if l.Pull != nil || !strings.Contains(l.PullError, `"next_url": nbgitpuller: targetpath`) || len(l.Warnings) != 1 ||
					!strings.Contains(l.Warnings[0], "recorded without a checkout") {
					t.Errorf("Pull %+v PullError %q warnings %q", l.Pull, l.PullError, l.Warnings)
				}
			}},
		{"git-pull path trick in custom_next", lti11("", `"custom_next":"/hub/user-redirect/git-pull?repo=r&urlpath=tree/../../x",`),
			func(t *testing.T, l *Launch) {
				if l.Pull != nil || !strings.Contains(l.PullError, `auth_state "custom_next": nbgitpuller: urlpath`) {
					t.Errorf("Pull %+v PullError %q", l.Pull, l.PullError)
				}
			}},
		{"git-pull without repo", lti11(`"next_url":"/hub/user-redirect/git-pull?branch=main",`, ""),
			func(t *testing.T, l *Launch) {
				if l.Pull != nil || !strings.Contains(l.PullError, "no repo") {
					t.Errorf("Pull %+v PullError %q", l.Pull, l.PullError)
				}
			}},
		// §4: a launch stamped in the future would pin its session.
		{"launched_at in the future is clamped to now", lti11(`"launched_at":"2099-01-01T00:00:00Z",`, ""),
			func(t *testing.T, l *Launch) {
				if !l.LaunchedAt.Equal(now.UTC()) || len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0], "in the future") {
					t.Errorf("LaunchedAt %v warnings %q", l.LaunchedAt, l.Warnings)
				}
			}},
		{"launched_at within the skew is kept", lti11(`"launched_at":"`+now.Add(30*time.Second).UTC().Format(time.RFC3339)+`",`, ""),
			func(t *testing.T, l *Launch) {
				if !l.LaunchedAt.Equal(now.Add(30*time.Second).UTC().Truncate(time.Second)) || len(l.Warnings) != 0 {
					t.Errorf("LaunchedAt %v warnings %q", l.LaunchedAt, l.Warnings)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse([]byte(tt.in), now)
			if err != nil {
				t.Fatalf("Parse(%s): %v", tt.in, err)
			}
			if !json.Valid(l.AuthState) || l.AuthState[0] != '{' {
				t.Errorf("AuthState %s", l.AuthState)
			}
			if tt.check != nil {
				tt.check(t, l)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, msg string
	}{
		{"empty", ``, "input is empty"},
		{"too large", `{"username":"a","pad":"` + strings.Repeat("x", MaxSize) + `"}`, "larger than"},
		{"invalid JSON", `{"username":`, "invalid JSON"},
		{"NaN", `{"username":"a","launched_at":NaN}`, "invalid JSON"},
		{"trailing garbage", lti11("", "") + ` x`, "trailing data"},
		{"second object", lti11("", "") + `{}`, "trailing data"},
		{"not an object", `["username"]`, "must be a JSON object"},
		{"null document", `null`, "must be a JSON object"},
		{"bad UTF-8", "{\"username\":\"a\xff\"}", "not valid UTF-8"},
		{"username missing", `{"auth_state":{}}`, `"username" is required`},
		{"username blank", `{"username":"  ","auth_state":{}}`, `"username" is required`},
		{"username number", `{"username":42,"auth_state":{}}`, `"username" must be a string`},
		{"username with slash", `{"username":"a/b","auth_state":{}}`, `contains "/"`},
		{"username with NUL", `{"username":"a\u0000b","auth_state":{}}`, "control character"},
		{"username with DEL", `{"username":"a\u007fb","auth_state":{}}`, "control character"},
		{"username too long", `{"username":"` + strings.Repeat("é", 128) + `","auth_state":{}}`, "longer than 255"},
		{"duplicate username", `{"username":"a","username":"b","auth_state":{}}`, `"username" twice`},
		{"auth_state missing", `{"username":"a"}`, `"auth_state" is required`},
		{"auth_state null", `{"username":"a","auth_state":null}`, `"auth_state" is required`},
		{"auth_state string", `{"username":"a","auth_state":"{}"}`, `"auth_state" must be a JSON object`},
		{"auth_state duplicate key", `{"username":"a","consumer_key":"k","auth_state":{"user_id":"u","user_id":"v","resource_link_id":"r"}}`, `"user_id" twice`},
		{"auth_state neither", `{"username":"a","auth_state":{"foo":"bar"}}`, "neither"},
		{"auth_state both", `{"username":"a","consumer_key":"k","auth_state":{"resource_link_id":"r","user_id":"u","iss":"i","https://purl.imsglobal.org/spec/lti/claim/version":"1.3.0"}}`, "both"},
		{"consumer_key number", `{"username":"a","consumer_key":1,"auth_state":{"resource_link_id":"r","user_id":"u"}}`, `"consumer_key" must be a string`},
		{"consumer_key missing", `{"username":"a","auth_state":{"resource_link_id":"r","user_id":"u"}}`, `"consumer_key" is required`},
		{"next_url number", lti11(`"next_url":1,`, ""), `"next_url" must be a string`},
		{"launched_at number", lti11(`"launched_at":1795600800,`, ""), `"launched_at" must be a string`},
		{"launched_at malformed", lti11(`"launched_at":"25/11/2026 10:00",`, ""), `"launched_at" "25/11/2026 10:00" is not an RFC 3339 time`},
		{"launched_at empty", lti11(`"launched_at":"",`, ""), "RFC 3339"},
		{"launched_at no zone", lti11(`"launched_at":"2026-11-25T10:00:00",`, ""), "RFC 3339"},
		{"lti11 resource_link_id missing", `{"username":"a","consumer_key":"k","auth_state":{"lti_version":"LTI-1p0","user_id":"u"}}`, `auth_state "resource_link_id" is required`},
		{"lti11 resource_link_id empty", `{"username":"a","consumer_key":"k","auth_state":{"resource_link_id":" ","user_id":"u"}}`, `auth_state "resource_link_id" is required`},
		{"lti11 user_id missing", `{"username":"a","consumer_key":"k","auth_state":{"resource_link_id":"r"}}`, `auth_state "user_id" is required`},
		{"lti11 value is a number", lti11("", `"lis_result_sourcedid":5,`), `auth_state "lis_result_sourcedid" must be a string or a non-empty list of strings`},
		{"lti11 value is an empty list", lti11("", `"roles":[],`), `auth_state "roles" must be`},
		{"lti11 value is a list of numbers", lti11("", `"roles":[1],`), `auth_state "roles" must be`},
		{"lti11 value is an object", lti11("", `"custom_next":{},`), `auth_state "custom_next" must be`},
		{"lti13 sub missing", `{"username":"a","auth_state":{"iss":"i","https://purl.imsglobal.org/spec/lti/claim/version":"1.3.0","https://purl.imsglobal.org/spec/lti/claim/resource_link":{"id":"r"}}}`, `auth_state "sub" is required`},
		{"lti13 iss empty", `{"username":"a","auth_state":{"iss":"","sub":"s","https://purl.imsglobal.org/spec/lti/claim/version":"1.3.0","https://purl.imsglobal.org/spec/lti/claim/resource_link":{"id":"r"}}}`, `auth_state "iss" is required`},
		{"lti13 iss number", `{"username":"a","auth_state":{"iss":1,"sub":"s","https://purl.imsglobal.org/spec/lti/claim/version":"1.3.0"}}`, `auth_state "iss" must be a string`},
		{"lti13 resource_link missing", `{"username":"a","auth_state":{"iss":"i","sub":"s","https://purl.imsglobal.org/spec/lti/claim/message_type":"LtiDeepLinkingRequest"}}`, `resource_link" "id" is required`},
		{"lti13 resource_link not object", `{"username":"a","auth_state":{"iss":"i","sub":"s","https://purl.imsglobal.org/spec/lti/claim/version":"1.3.0","https://purl.imsglobal.org/spec/lti/claim/resource_link":"r"}}`, `resource_link" must be a JSON object`},
		{"lti13 aud number", `{"username":"a","auth_state":{"aud":5,"iss":"i","sub":"s","https://purl.imsglobal.org/spec/lti/claim/version":"1.3.0","https://purl.imsglobal.org/spec/lti/claim/resource_link":{"id":"r"}}}`, `auth_state "aud" must be a string or a list of strings`},
		{"lti13 roles string", lti13("", `"https://purl.imsglobal.org/spec/lti/claim/roles":"Learner",`), `roles" must be a list of strings`},
		{"lti13 AGS scope string", lti13("", `"https://purl.imsglobal.org/spec/lti-ags/claim/endpoint":{"scope":"x"},`), `"scope" must be a list of strings`},
		{"lti13 AGS not object", lti13("", `"https://purl.imsglobal.org/spec/lti-ags/claim/endpoint":[],`), `endpoint" must be a JSON object`},
		{"lti13 context id number", lti13("", `"https://purl.imsglobal.org/spec/lti/claim/context":{"id":5},`), `context" "id" must be a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse([]byte(tt.in), now)
			if err == nil {
				t.Fatalf("Parse(%.200s) = %+v, want error", tt.in, *l)
			}
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *InvalidError", err, err)
			}
			if !strings.HasPrefix(err.Error(), "launch: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want it to mention %q", err, tt.msg)
			}
		})
	}
}

func TestAuthStateStorage(t *testing.T) {
	in := `{"username":"a","consumer_key":"k","auth_state":{ "b" : [ 1, 2 ], "oauth_signature":"c2ln", "a":"<x>&", "resource_link_id":"r","user_id":"u","oauth_nonce":"n"}}`
	l, err := Parse([]byte(in), now)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"b":[1,2],"a":"<x>&","resource_link_id":"r","user_id":"u","oauth_nonce":"n"}`
	if string(l.AuthState) != want {
		t.Errorf("AuthState\n got %s\nwant %s", l.AuthState, want)
	}
	l, err = Parse([]byte(`{"username":"a","consumer_key":"k","auth_state":{ "resource_link_id" : "r" ,"user_id":"u"} }`), now)
	if err != nil {
		t.Fatal(err)
	}
	if string(l.AuthState) != `{"resource_link_id":"r","user_id":"u"}` {
		t.Errorf("AuthState %s", l.AuthState)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(lti11(`"next_url":"/hub/user-redirect/git-pull?repo=r&targetpath=a",`, `"roles":["x"],`)))
	f.Add([]byte(lti13("", `"https://purl.imsglobal.org/spec/lti/claim/target_link_uri":"https://h/?next=%2Fgit-pull%3Frepo%3Dr",`)))
	f.Add([]byte(`{"username":" A ","auth_state":{"oauth_consumer_key":"k","resource_link_id":["r"],"user_id":["u"]}}`))
	f.Add([]byte(`{"username":"a","auth_state":{"resource_link_id":"r"}} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse(data, now)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *InvalidError", err, err)
			}
			if l != nil {
				t.Fatalf("launch and error both returned")
			}
			return
		}
		if l.Username == "" || !utf8.ValidString(l.Username) || strings.Contains(l.Username, "/") || len(l.Username) > MaxUsernameLen {
			t.Fatalf("bad username %q", l.Username)
		}
		if l.Version != "1.1" && l.Version != "1.3" {
			t.Fatalf("bad version %q", l.Version)
		}
		if l.Platform == "" || l.LTIUserID == "" || l.ResourceLinkID == "" {
			t.Fatalf("missing identity in %+v", *l)
		}
		if !json.Valid(l.AuthState) || l.AuthState[0] != '{' {
			t.Fatalf("bad AuthState %s", l.AuthState)
		}
		if l.LaunchedAt.Location() != time.UTC {
			t.Fatalf("LaunchedAt not UTC: %v", l.LaunchedAt)
		}
		if l.Pull != nil {
			if c := l.Pull.Checkout(""); strings.HasPrefix(c, "/") || strings.HasPrefix(c, "..") {
				t.Fatalf("checkout %q escapes", c)
			}
		}
	})
}
