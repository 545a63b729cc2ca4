// Package importer reads the session stores of tools ltigrade replaces and
// turns each stored session into the launch JSON `ltigrade record` takes, so
// imported sessions go through exactly the parsing of live launches.
//
// ltipassparams (github.com/jdmansour/ltipassparams, storage.py) kept one
// row per (resource_link_id, user_id) in lti_sessions.sqlite, in the hub's
// working directory (/opt/tljh/state on older TLJH, /var/lib/jupyterhub on
// newer), overwriting it on each launch:
//
//   - lti_params: ltiauthenticator's auth_state as JSON, that is every LTI 1.1
//     launch argument except oauth_* (custom_next and next included);
//   - oauth_consumer_key: the consumer key, read from the launch request;
//   - resource_link_id, user_id: copies of lti_params' values; user_id is the
//     LTI user_id, not the hub username, which was never stored;
//   - checkout_location: the nbgitpuller urlpath of custom_next with a
//     leading "tree/" removed (a path relative to the user's notebook root),
//     or NULL when custom_next held no git-pull link.
//
// The hub username is rebuilt as ltiauthenticator chose it: the value of its
// username_key (default custom_canvas_user_id) if non-empty, else user_id,
// lower-cased by launch.Parse as JupyterHub does.
package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	_ "github.com/mattn/go-sqlite3" // the database/sql driver for the source file

	"github.com/ltigrade/ltigrade/internal/launch"
)

// Auth_state keys that mark an imported launch. MarkerKey holds a digest of
// the source row, so importing the same file (or a copy) again skips the
// rows already imported, while a row changed since (a newer launch in the
// old system) imports as a new launch.
const (
	MarkerKey    = "ltigrade_import"
	MarkerRowKey = "ltigrade_import_row"
)

// DefaultUsernameKey is ltiauthenticator's default username_key.
const DefaultUsernameKey = "custom_canvas_user_id"

// Size limits per column: a launch is a few KiB, and a larger value is junk
// that is refused without being read into memory.
const (
	maxParams = launch.MaxSize - 4096 // room for the fields added around it
	maxColumn = 4096
)

// Options control a conversion.
type Options struct {
	LaunchedAt  time.Time // the time given to every imported launch
	UsernameKey string    // ltiauthenticator's username_key; "" means DefaultUsernameKey
}

// Row is one convertible source row.
type Row struct {
	ID       int64
	Marker   string // MarkerKey's value
	Launch   *launch.Launch
	Warnings []string
}

// Problem is a row that is not imported, and why.
type Problem struct {
	Row    int64  `json:"row"`
	Reason string `json:"reason"`
}

// Result is what a source file holds.
type Result struct {
	Total   int       // rows in the file
	Rows    []Row     // convertible rows, in id order
	Refused []Problem // rows that cannot be converted
	Skipped []Problem // rows that repeat an earlier row of the file
}

// FileError says the file as a whole is not an ltipassparams store.
type FileError struct{ Msg string }

func (e *FileError) Error() string { return e.Msg }

func fileErr(format string, a ...any) error { return &FileError{Msg: fmt.Sprintf(format, a...)} }

// ModTime is when the file was last written, counting its write-ahead log:
// no launch it holds is newer, so it is the default launch time of imports.
func ModTime(name string) (time.Time, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return time.Time{}, err
	}
	t := fi.ModTime()
	if wal, err := os.Stat(name + "-wal"); err == nil && wal.ModTime().After(t) {
		t = wal.ModTime()
	}
	return t, nil
}

// open opens the file read-only: it may belong to a hub that still runs
// ltipassparams, and an import must never change it.
func open(name string) (*sql.DB, error) {
	fi, err := os.Stat(name)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fileErr("%s: %v", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fileErr("%s is not a regular file", name)
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, err
	}
	q := url.Values{"mode": {"ro"}, "_query_only": {"1"}, "_busy_timeout": {"5000"}}
	db, err := sql.Open("sqlite3", "file:"+(&url.URL{Path: abs}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fileErr("%s: %v", name, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// column selects a column as bytes when it is at most limit bytes long, its
// length, and its SQLite type: SQLite columns hold any type whatever their
// declaration, and a hostile file must not make us load a gigabyte.
func column(name string, limit int) string {
	b := "CAST(" + name + " AS BLOB)"
	return fmt.Sprintf("typeof(%s), length(%s), CASE WHEN length(%s) <= %d THEN %s END", name, b, b, limit, b)
}

type value struct {
	typ  string
	n    sql.NullInt64
	data []byte
}

func (v *value) dest() []any { return []any{&v.typ, &v.n, &v.data} }

// text returns the column as a string; "" for NULL.
func (v *value) text(name string, limit int) (string, error) {
	switch {
	case v.typ == "null":
		return "", nil
	case v.n.Int64 > int64(limit):
		return "", fmt.Errorf("%s is %d bytes, more than the %d accepted", name, v.n.Int64, limit)
	case !utf8.Valid(v.data):
		return "", fmt.Errorf("%s is not valid UTF-8", name)
	}
	return string(v.data), nil
}

// ReadLTIPassParams reads an ltipassparams lti_sessions.sqlite and converts
// each row. Rows that cannot be converted are listed in Result.Refused; an
// error means the file itself is unusable (a *FileError) or the context
// ended.
func ReadLTIPassParams(ctx context.Context, name string, opt Options) (*Result, error) {
	if opt.UsernameKey == "" {
		opt.UsernameKey = DefaultUsernameKey
	}
	if opt.LaunchedAt.IsZero() {
		return nil, errors.New("importer: no launch time")
	}
	db, err := open(name)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	q := "SELECT id, " + column("lti_params", maxParams) + ", " + column("oauth_consumer_key", maxColumn) + ", " +
		column("checkout_location", maxColumn) + ", " + column("resource_link_id", maxColumn) + ", " +
		column("user_id", maxColumn) + " FROM lti_sessions ORDER BY id"
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fileErr("%s is not an ltipassparams session store (lti_sessions.sqlite): %v", name, err)
	}
	defer rows.Close()
	res := &Result{}
	seen := map[string]int64{}
	for rows.Next() {
		var id int64
		var params, key, loc, link, user value
		dest := []any{&id}
		for _, v := range []*value{&params, &key, &loc, &link, &user} {
			dest = append(dest, v.dest()...)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fileErr("%s: reading lti_sessions: %v", name, err)
		}
		res.Total++
		r, err := convert(id, &params, &key, &loc, &link, &user, opt)
		if err != nil {
			res.Refused = append(res.Refused, Problem{Row: id, Reason: err.Error()})
			continue
		}
		if first, dup := seen[r.Marker]; dup {
			res.Skipped = append(res.Skipped, Problem{Row: id, Reason: fmt.Sprintf("same session data as row %d", first)})
			continue
		}
		seen[r.Marker] = id
		res.Rows = append(res.Rows, *r)
	}
	if err := rows.Err(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fileErr("%s: reading lti_sessions: %v", name, err)
	}
	return res, nil
}

// arg reads an LTI argument from lti_params the way launch.Parse does: a
// string, or the first of a list of strings; ok is false when absent.
func arg(params map[string]json.RawMessage, name string) (v string, ok bool) {
	raw, present := params[name]
	if !present || string(raw) == "null" {
		return "", false
	}
	if json.Unmarshal(raw, &v) == nil {
		return v, true
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil && len(list) > 0 {
		return list[0], true
	}
	return "", true
}

func convert(id int64, pv, kv, lv, rv, uv *value, opt Options) (*Row, error) {
	paramsText, err := pv.text("lti_params", maxParams)
	if err != nil {
		return nil, err
	}
	key, err := kv.text("oauth_consumer_key", maxColumn)
	if err != nil {
		return nil, err
	}
	loc, err := lv.text("checkout_location", maxColumn)
	if err != nil {
		return nil, err
	}
	linkCol, err := rv.text("resource_link_id", maxColumn)
	if err != nil {
		return nil, err
	}
	userCol, err := uv.text("user_id", maxColumn)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(key) == "" {
		return nil, errors.New("oauth_consumer_key is empty")
	}
	trimmed := bytes.TrimSpace([]byte(paramsText))
	if len(trimmed) == 0 {
		return nil, errors.New("lti_params is empty")
	}
	var params map[string]json.RawMessage
	if !json.Valid(trimmed) || trimmed[0] != '{' || json.Unmarshal(trimmed, &params) != nil {
		return nil, errors.New("lti_params is not a JSON object")
	}
	for _, k := range []string{MarkerKey, MarkerRowKey} {
		if _, ok := params[k]; ok {
			return nil, fmt.Errorf("lti_params holds %q, a key ltigrade reserves for its own marks", k)
		}
	}

	// The columns are what ltipassparams keyed its sessions on; lti_params
	// must agree with them, and lends them its values when it lacks them.
	extra := map[string]string{}
	for _, c := range []struct{ name, col string }{{"user_id", userCol}, {"resource_link_id", linkCol}} {
		p, present := arg(params, c.name)
		switch {
		case present && c.col != "" && p != c.col:
			return nil, fmt.Errorf("%s column %q disagrees with lti_params %s %q", c.name, c.col, c.name, p)
		case !present && c.col == "":
			return nil, fmt.Errorf("no %s in the row or its lti_params", c.name)
		case !present:
			extra[c.name] = c.col
		}
	}
	userID := userCol
	if userID == "" {
		userID, _ = arg(params, "user_id")
	}
	username, _ := arg(params, opt.UsernameKey)
	if strings.TrimSpace(username) == "" {
		username = userID
	}

	sum := sha256.New()
	for _, s := range []string{key, userCol, linkCol, paramsText} {
		sum.Write([]byte(s))
		sum.Write([]byte{0})
	}
	marker := "ltipassparams:sha256:" + hex.EncodeToString(sum.Sum(nil))
	extra[MarkerKey] = marker
	extra[MarkerRowKey] = fmt.Sprint(id)

	authState, err := appendKeys(trimmed, extra)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep values such as Moodle's JSON sourcedId as they were
	err = enc.Encode(struct {
		Username    string          `json:"username"`
		ConsumerKey string          `json:"consumer_key"`
		LaunchedAt  string          `json:"launched_at"`
		AuthState   json.RawMessage `json:"auth_state"`
	}{username, key, opt.LaunchedAt.UTC().Format(time.RFC3339), authState})
	if err != nil {
		return nil, fmt.Errorf("lti_params: %v", err)
	}
	l, err := launch.Parse(buf.Bytes(), opt.LaunchedAt)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "launch: "))
	}
	if l.Version != "1.1" {
		return nil, errors.New("lti_params is not an LTI 1.1 launch")
	}

	r := &Row{ID: id, Marker: marker, Launch: l}
	switch {
	case loc != "" && l.Pull == nil:
		r.Warnings = append(r.Warnings, fmt.Sprintf("checkout_location %q but lti_params holds no nbgitpuller link: imported without a checkout", loc))
	case loc != "" && l.Pull != nil:
		// ltipassparams stored the urlpath minus "tree/"; a different value
		// means the row was edited or custom_next was not what it parsed.
		if want := strings.TrimPrefix(l.Pull.URLPath, "tree/"); want != loc {
			r.Warnings = append(r.Warnings, fmt.Sprintf("checkout_location %q differs from the link's urlpath %q; the link is used", loc, l.Pull.URLPath))
		}
	}
	return r, nil
}

// appendKeys adds string members at the end of a JSON object's text, so
// the stored auth_state keeps the original members in their order. obj is
// a valid JSON object.
func appendKeys(obj []byte, extra map[string]string) (json.RawMessage, error) {
	inner := bytes.TrimSpace(obj[1 : len(obj)-1])
	var b bytes.Buffer
	b.WriteByte('{')
	b.Write(inner)
	n := len(inner)
	for _, k := range []string{"user_id", "resource_link_id", MarkerKey, MarkerRowKey} {
		v, ok := extra[k]
		if !ok {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Marker returns the MarkerKey value of a stored auth_state, "" if none.
func Marker(authState []byte) string {
	if !bytes.Contains(authState, []byte(MarkerKey)) {
		return "" // most launches: skip the decoding
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(authState, &m) != nil {
		return ""
	}
	var v string
	if json.Unmarshal(m[MarkerKey], &v) != nil {
		return ""
	}
	return v
}
