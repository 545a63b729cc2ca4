package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenSQLiteRefusesURL: a URL is never taken for a file name, which
// would create ./postgres:/user:password@host/db and answer from it.
func TestOpenSQLiteRefusesURL(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := openSQLite("postgres://grader:pw-LEAK@db/ltigrade", options{})
	if err == nil || strings.Contains(err.Error(), "pw-LEAK") || !strings.Contains(err.Error(), "not a SQLite file path") {
		t.Errorf("err = %v", err)
	}
	if entries, _ := os.ReadDir("."); len(entries) > 0 {
		t.Errorf("created %s", entries[0].Name())
	}
}

func mkLaunch(user, link string, at time.Time) *Launch {
	return &Launch{Username: user, Version: "1.1", Platform: "course-key", LTIUserID: "lti-" + user,
		ResourceLinkID: link, LaunchedAt: at, AuthState: []byte(`{}`)}
}

func perm(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestOpenSQLiteFixesLooseMode: a database others can read holds every
// student's launch data; opening it drops the "other" bits of the file and
// its -wal and -shm (which SQLite creates with the file's mode) and says so.
// Group bits stay: the documented grader group needs them.
func TestOpenSQLiteFixesLooseMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lti.db")
	first, err := openSQLite(path, options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if w := first.Warnings(); len(w) != 0 {
		t.Errorf("new database: warnings %q", w)
	}
	if m := perm(t, path); m != 0o600 {
		t.Errorf("new database has mode %04o", m)
	}
	// A write keeps -wal and -shm in place while first is open.
	if _, err := first.RecordLaunch(context.Background(), mkLaunch("alice", "hw1", time.Now())); err != nil {
		t.Fatal(err)
	}
	files := []string{path, path + "-wal", path + "-shm"}
	for _, f := range files {
		if err := os.Chmod(f, 0o664); err != nil {
			t.Fatal(err)
		}
	}
	s, err := openSQLite(path, options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := "database " + path + " was readable by others (mode 0664); changed to 0660"
	if w := s.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0], want) {
		t.Errorf("warnings %q, want %q", w, want)
	}
	for _, f := range files {
		if m := perm(t, f); m != 0o660 {
			t.Errorf("%s has mode %04o, want 0660", filepath.Base(f), m)
		}
	}
	if _, err := s.ListSessions(context.Background(), SessionFilter{}); err != nil {
		t.Fatal(err)
	}

	// Group-only access is left alone, silently.
	again, err := openSQLite(path, options{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if w := again.Warnings(); len(w) != 0 {
		t.Errorf("group-readable database: warnings %q", w)
	}
}
