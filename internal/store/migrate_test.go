package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// A database of the previous schema keeps its launches; LTI 1.3 links it
// recorded came from the unsigned login next, so they become unsigned,
// and the opened notebooks it knows fill course_notebooks.
func TestMigrateMarksOldLTI13LinksUnsigned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	const before = 3 // schema steps of the release before issue 8
	for _, step := range schema[:before] {
		if _, err := db.Exec(step); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"1.1", "1.3"} {
		if _, err := db.Exec(`INSERT INTO launches (session_id, username, version, platform, lti_user_id, resource_link_id,
			context_id, next_url, checkout, opened, opened_file, launched_at, recorded_at, auth_state)
			VALUES (1, 'alice', ?, 'p', 'u', 'rl-'||?, 'c1', '/hub/user-redirect/git-pull?repo=r', 'r', 'r/a/'||?||'.ipynb', 1, 1, 1, '{}')`, v, v, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`PRAGMA user_version = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := openSQLite(path, options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, want := range map[int64]bool{1: true, 2: false} {
		l, err := s.Launch(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if l.NextSigned != want {
			t.Errorf("launch %d (%s): signed %v, want %v", id, l.Version, l.NextSigned, want)
		}
	}
	ns, err := s.CourseNotebooks(context.Background(), "p", "c1")
	if err != nil || len(ns) != 2 {
		t.Errorf("course notebooks after migration: %v %v", ns, err)
	}
}

// The superseding a claim does within its sessions reads those sessions'
// rows by the session index, not the whole queue by the status index: with
// a 20,000-row batch queued, the status index made every claim of
// `score --batch` read all 20,000 rows.
func TestSupersedeWithinSessionsUsesSessionIndex(t *testing.T) {
	s, err := openSQLite(filepath.Join(t.TempDir(), "lti.db"), options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tail := range []string{` AND session_id = 7`, ` AND session_id IN (SELECT session_id FROM passbacks WHERE id IN (1, 2))`} {
		rows, err := s.db.Query(`EXPLAIN QUERY PLAN `+supersedeSQL+tail, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			rows.Scan(&id, &parent, &notused, &detail)
			plan = append(plan, detail)
		}
		rows.Close()
		if got := strings.Join(plan, "; "); strings.Contains(got, "passbacks_status") || !strings.Contains(got, "passbacks_session") {
			t.Errorf("plan of the superseding%s: %s", tail, got)
		}
	}
}
