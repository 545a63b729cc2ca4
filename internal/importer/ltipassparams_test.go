package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// schema is the table SQLAlchemy creates for ltipassparams' LtiSession.
const schema = `CREATE TABLE lti_sessions (
	id INTEGER NOT NULL,
	lti_params JSON NOT NULL,
	oauth_consumer_key VARCHAR NOT NULL,
	checkout_location VARCHAR,
	resource_link_id VARCHAR NOT NULL,
	user_id VARCHAR NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (resource_link_id, user_id)
)`

// loose is the same table without constraints: a hand-edited or damaged
// file can hold NULLs, blobs and numbers anywhere.
const loose = `CREATE TABLE lti_sessions (id INTEGER PRIMARY KEY, lti_params, oauth_consumer_key,
	checkout_location, resource_link_id, user_id)`

type fixtureRow struct {
	id                   int64
	params               any
	key, loc, link, user any
}

func fixture(t *testing.T, ddl string, rows []fixtureRow) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lti_sessions.sqlite")
	db, err := sql.Open("sqlite3", p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if _, err := db.Exec(`INSERT INTO lti_sessions VALUES (?,?,?,?,?,?)`, r.id, r.params, r.key, r.loc, r.link, r.user); err != nil {
			t.Fatalf("row %d: %v", r.id, err)
		}
	}
	return p
}

func params(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		k, _ := json.Marshal(kv[i])
		v, _ := json.Marshal(kv[i+1])
		b.Write(k)
		b.WriteString(": ")
		b.Write(v)
	}
	b.WriteByte('}')
	return b.String()
}

func lti(user, link string, more ...string) string {
	return params(append([]string{"lti_message_type", "basic-lti-launch-request", "lti_version", "LTI-1p0",
		"user_id", user, "resource_link_id", link, "roles", "Learner", "context_id", "c1", "context_title", "DS 100",
		"lis_outcome_service_url", "https://lms.example/outcomes", "lis_result_sourcedid", "sid-" + user + "-" + link}, more...)...)
}

const pullHW1 = "/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Fex%2Fds100&urlpath=tree%2Fds100%2Fhw1%2Fhw1.ipynb&branch=main"

// From ltipassparams' own doctest: an /lti/redirect wrapper, nested values
// encoded twice.
const pullWrapped = "http://example.com/lti/redirect?next=http%3A%2F%2Fexample.com%2Fhub%2Fuser-redirect%2Fgit-pull%3Frepo%3Dhttps%253A%252F%252Fgithub.com%252FKI-Campus%252FDatengeschichten%26urlpath%3Dtree%252FDatengeschichten%252F%26branch%3Dmain"

var at = time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)

func read(t *testing.T, p string) *Result {
	t.Helper()
	res, err := ReadLTIPassParams(context.Background(), p, Options{LaunchedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func reasons(ps []Problem) map[int64]string {
	m := map[int64]string{}
	for _, p := range ps {
		m[p.Row] = p.Reason
	}
	return m
}

func TestReadLTIPassParams(t *testing.T) {
	moodleSID := `{"data":{"instanceid":"2","userid":"4","launchid":1},"hash":"<&>"}`
	huge := `{"user_id": "x", "resource_link_id": "y", "pad": "` + strings.Repeat("a", maxParams) + `"}`
	p := fixture(t, schema, []fixtureRow{
		{1, lti("u-1", "hw1", "custom_canvas_user_id", "Alice", "custom_next", pullHW1), "course-key", "ds100/hw1/hw1.ipynb", "hw1", "u-1"},
		{2, lti("bob", "hw1", "custom_next", pullWrapped), "course-key", "Datengeschichten/", "hw1", "bob"},
		// Odd Unicode and an opaque Moodle sourcedId pass through untouched.
		{3, params("user_id", "ünïcødé-😀", "resource_link_id", "hw2", "lti_version", "LTI-1p0", "lis_result_sourcedid", moodleSID,
			"context_title", "Ω ‮ RTL", "next", pullHW1), "moodle", nil, "hw2", "ünïcødé-😀"},
		{4, "{not json", "course-key", nil, "hw1", "u-4"},
		{5, "[1, 2]", "course-key", nil, "hw1", "u-5"},
		{6, lti("u-6", "hw1"), "course-key", nil, "hw1", "someone-else"},
		{7, lti("u-7", "hw1"), "", nil, "hw1", "u-7"},
		{8, lti("u-8", "hw1", "custom_canvas_user_id", "a/b"), "course-key", nil, "hw1", "u-8"},
		{9, huge, "course-key", nil, "y", "x"},
		{10, `{"user_id": "u-10", "user_id": "u-10", "resource_link_id": "hw1"}`, "course-key", nil, "hw1", "u-10"},
		{11, lti("u-11", "hw1", MarkerKey, "forged"), "course-key", nil, "hw1", "u-11"},
		// Missing fields: lti_params lacks user_id and resource_link_id; the
		// columns supply them.
		{12, params("lti_message_type", "basic-lti-launch-request", "context_id", "c1"), "course-key", nil, "hw3", "u-12"},
		// checkout_location that does not match the link: imported, warned.
		{13, lti("u-13", "hw1", "custom_next", pullHW1), "course-key", "elsewhere", "hw1", "u-13"},
		// checkout_location without any link.
		{14, lti("u-14", "hw1"), "course-key", "ds100/hw1/hw1.ipynb", "hw1", "u-14"},
		// Invalid UTF-8 in lti_params, stored as a blob.
		{15, []byte("{\"user_id\": \"u-15\xff\"}"), "course-key", nil, "hw1", "u-15"},
		// LTI 1.3 claims are not what ltipassparams stored.
		{16, params("iss", "https://lms.example", "sub", "x", "https://purl.imsglobal.org/spec/lti/claim/message_type", "LtiResourceLinkRequest"), "course-key", nil, "hw1", "u-16"},
		// A hostile user id for a username: control characters.
		{17, lti("u\x1b[31m", "hw1"), "course-key", nil, "hw1", "u\x1b[31m"},
	})
	before := fileHash(t, p)
	res := read(t, p)
	if fileHash(t, p) != before {
		t.Fatal("reading changed the file")
	}
	if res.Total != 17 {
		t.Fatalf("total %d", res.Total)
	}
	refused := reasons(res.Refused)
	wantRefused := map[int64]string{
		4:  "lti_params is not a JSON object",
		5:  "lti_params is not a JSON object",
		6:  `user_id column "someone-else" disagrees with lti_params user_id "u-6"`,
		7:  "oauth_consumer_key is empty",
		8:  `"username" "a/b" contains "/"`,
		9:  "lti_params is 1044",
		10: `has key "user_id" twice`,
		11: `reserves`,
		15: "lti_params is not valid UTF-8",
		16: "LTI 1.1 and LTI 1.3",
		17: "control character",
	}
	for id, want := range wantRefused {
		if !strings.Contains(refused[id], want) {
			t.Errorf("row %d refused for %q, want %q", id, refused[id], want)
		}
	}
	if len(res.Refused) != len(wantRefused) {
		t.Errorf("refused %v", res.Refused)
	}
	for _, pr := range res.Refused {
		if strings.ContainsAny(pr.Reason, "\x1b\n") || len(pr.Reason) > 300 {
			t.Errorf("row %d: reason is not safe to print: %q", pr.Row, pr.Reason)
		}
	}

	byID := map[int64]Row{}
	for _, r := range res.Rows {
		byID[r.ID] = r
	}
	if len(byID) != 6 {
		t.Fatalf("imported rows %v", byID)
	}
	r1 := byID[1].Launch
	if r1.Username != "alice" || r1.Platform != "course-key" || r1.LTIUserID != "u-1" || r1.ResourceLinkID != "hw1" ||
		r1.Pull == nil || r1.Pull.Opened != "ds100/hw1/hw1.ipynb" || !r1.LaunchedAt.Equal(at) || r1.SourcedID != "sid-u-1-hw1" {
		t.Errorf("row 1: %+v %+v", r1, r1.Pull)
	}
	if len(byID[1].Warnings) != 0 {
		t.Errorf("row 1 warnings %v", byID[1].Warnings)
	}
	if m := Marker(r1.AuthState); m == "" || m != byID[1].Marker || !strings.HasPrefix(m, "ltipassparams:sha256:") {
		t.Errorf("row 1 marker %q in %s", m, r1.AuthState)
	}
	if !bytes.HasPrefix(r1.AuthState, []byte(`{"lti_message_type":"basic-lti-launch-request","lti_version":"LTI-1p0","user_id":"u-1"`)) ||
		!bytes.HasSuffix(r1.AuthState, []byte(`"ltigrade_import_row":"1"}`)) {
		t.Errorf("row 1 auth_state does not keep the original order: %s", r1.AuthState)
	}
	if r2 := byID[2].Launch; r2.Username != "bob" || r2.Pull == nil || r2.Pull.TargetPath != "Datengeschichten" || len(byID[2].Warnings) != 0 {
		t.Errorf("row 2: %+v %+v %v", r2, r2.Pull, byID[2].Warnings)
	}
	if r3 := byID[3].Launch; r3.Username != "ünïcødé-😀" || r3.SourcedID != moodleSID || r3.ContextTitle != "Ω ‮ RTL" || r3.Platform != "moodle" {
		t.Errorf("row 3: %+v", r3)
	}
	if r12 := byID[12].Launch; r12.LTIUserID != "u-12" || r12.ResourceLinkID != "hw3" || r12.Username != "u-12" {
		t.Errorf("row 12: %+v", r12)
	}
	if w := byID[13].Warnings; len(w) != 1 || !strings.Contains(w[0], `checkout_location "elsewhere" differs`) {
		t.Errorf("row 13 warnings %v", w)
	}
	if w := byID[14].Warnings; len(w) != 1 || !strings.Contains(w[0], "no nbgitpuller link") {
		t.Errorf("row 14 warnings %v", w)
	}

	// The marker depends on the row's content only: a second read agrees.
	again := read(t, p)
	for i, r := range again.Rows {
		if r.Marker != res.Rows[i].Marker {
			t.Fatal("markers differ between reads")
		}
	}
}

func TestUsernameKey(t *testing.T) {
	p := fixture(t, schema, []fixtureRow{
		{1, lti("u-1", "hw1", "lis_person_contact_email_primary", "Ann@Example.org", "custom_canvas_user_id", "99"), "k", nil, "hw1", "u-1"},
		{2, lti("u-2", "hw1"), "k", nil, "hw1", "u-2"},
	})
	res, err := ReadLTIPassParams(context.Background(), p, Options{LaunchedAt: at, UsernameKey: "lis_person_contact_email_primary"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows[0].Launch.Username != "ann@example.org" || res.Rows[1].Launch.Username != "u-2" {
		t.Fatalf("usernames %q %q", res.Rows[0].Launch.Username, res.Rows[1].Launch.Username)
	}
	res = read(t, p)
	if res.Rows[0].Launch.Username != "99" {
		t.Fatalf("default username_key: %q", res.Rows[0].Launch.Username)
	}
}

func TestLooseTable(t *testing.T) {
	good := lti("42", "hw1")
	p := fixture(t, loose, []fixtureRow{
		{1, nil, "k", nil, "hw1", "u-1"},
		{2, good, nil, nil, "hw1", "42"},
		{3, good, "k", nil, "hw1", 42}, // a number where text belongs
		{4, good, "k", nil, "hw1", 42}, // the same row again
		{5, lti("42", "hw5"), "k", 3.5, "hw5", "42"},
		{6, lti("42", "hw6"), []byte("k"), nil, "hw6", "42"},
		{7, good, strings.Repeat("k", maxColumn+1), nil, "hw1", "42"},
	})
	res := read(t, p)
	refused := reasons(res.Refused)
	for id, want := range map[int64]string{1: "lti_params is empty", 2: "oauth_consumer_key is empty", 7: "oauth_consumer_key is 4097 bytes"} {
		if !strings.Contains(refused[id], want) {
			t.Errorf("row %d refused for %q, want %q", id, refused[id], want)
		}
	}
	if s := reasons(res.Skipped); !strings.Contains(s[4], "same session data as row 3") {
		t.Errorf("skipped %v", res.Skipped)
	}
	if len(res.Rows) != 3 || res.Rows[0].ID != 3 || res.Rows[0].Launch.LTIUserID != "42" {
		t.Fatalf("rows %+v", res.Rows)
	}
	if w := res.Rows[1].Warnings; res.Rows[1].ID != 5 || len(w) != 1 || !strings.Contains(w[0], `"3.5"`) {
		t.Errorf("row 5 warnings %v", w)
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("hello, this is not a database\n"), 0o600)
	other := filepath.Join(dir, "other.sqlite")
	db, _ := sql.Open("sqlite3", other)
	db.Exec("CREATE TABLE something (x)")
	db.Close()
	nocol := filepath.Join(dir, "nocol.sqlite")
	db, _ = sql.Open("sqlite3", nocol)
	db.Exec("CREATE TABLE lti_sessions (id INTEGER PRIMARY KEY, lti_params)")
	db.Close()
	for name, p := range map[string]string{
		"missing":         filepath.Join(dir, "nope.sqlite"),
		"directory":       dir,
		"not sqlite":      text,
		"no table":        other,
		"missing columns": nocol,
	} {
		_, err := ReadLTIPassParams(context.Background(), p, Options{LaunchedAt: at})
		var fe *FileError
		if !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a FileError", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.sqlite")); err == nil {
		t.Error("reading a missing file created it")
	}
}

func TestModTimeCountsTheWAL(t *testing.T) {
	p := filepath.Join(t.TempDir(), "db")
	os.WriteFile(p, nil, 0o600)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(p, old, old)
	if m, _ := ModTime(p); !m.Equal(old) {
		t.Fatalf("mtime %v", m)
	}
	os.WriteFile(p+"-wal", nil, 0o600)
	if m, _ := ModTime(p); !m.After(old) {
		t.Fatalf("the WAL's newer mtime is ignored: %v", m)
	}
}

func fileHash(t *testing.T, p string) [32]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
