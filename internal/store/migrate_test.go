package store

import (
	"context"
	"database/sql"
	"path/filepath"
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
