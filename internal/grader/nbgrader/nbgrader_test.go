package nbgrader

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// schema is the subset of the tables nbgrader's SQLAlchemy models
// (nbgrader/api.py) create that ltigrade reads, column for column.
const schema = `
CREATE TABLE course (id VARCHAR(128) NOT NULL, PRIMARY KEY (id), UNIQUE (id));
CREATE TABLE student (id VARCHAR(128) NOT NULL, first_name VARCHAR(128), last_name VARCHAR(128), email VARCHAR(128), lms_user_id VARCHAR(128), PRIMARY KEY (id));
CREATE TABLE assignment (id VARCHAR(32) NOT NULL, name VARCHAR(128) NOT NULL, duedate DATETIME, course_id VARCHAR(128) NOT NULL, PRIMARY KEY (id), UNIQUE (name), FOREIGN KEY(course_id) REFERENCES course (id));
CREATE TABLE notebook (id VARCHAR(32) NOT NULL, name VARCHAR(128) NOT NULL, assignment_id VARCHAR(32), kernelspec VARCHAR(1024), PRIMARY KEY (id), UNIQUE (name, assignment_id), FOREIGN KEY(assignment_id) REFERENCES assignment (id));
CREATE TABLE base_cell (id VARCHAR(32) NOT NULL, name VARCHAR(128) NOT NULL, notebook_id VARCHAR(32) NOT NULL, type VARCHAR(50), PRIMARY KEY (id), UNIQUE (name, notebook_id, type), FOREIGN KEY(notebook_id) REFERENCES notebook (id));
CREATE TABLE grade_cells (max_score FLOAT NOT NULL, cell_type VARCHAR(8) NOT NULL, id VARCHAR(32) NOT NULL, PRIMARY KEY (id), FOREIGN KEY(id) REFERENCES base_cell (id));
CREATE TABLE task_cells (max_score FLOAT NOT NULL, cell_type VARCHAR(8) NOT NULL, id VARCHAR(32) NOT NULL, PRIMARY KEY (id), FOREIGN KEY(id) REFERENCES base_cell (id));
CREATE TABLE submitted_assignment (id VARCHAR(32) NOT NULL, assignment_id VARCHAR(32), student_id VARCHAR(128), timestamp DATETIME, extension INTEGER, PRIMARY KEY (id), UNIQUE (assignment_id, student_id), FOREIGN KEY(assignment_id) REFERENCES assignment (id), FOREIGN KEY(student_id) REFERENCES student (id));
CREATE TABLE submitted_notebook (id VARCHAR(32) NOT NULL, assignment_id VARCHAR(32), notebook_id VARCHAR(32), flagged BOOLEAN, late_submission_penalty FLOAT, PRIMARY KEY (id), UNIQUE (notebook_id, assignment_id), FOREIGN KEY(assignment_id) REFERENCES submitted_assignment (id), FOREIGN KEY(notebook_id) REFERENCES notebook (id));
CREATE TABLE grade (id VARCHAR(32) NOT NULL, notebook_id VARCHAR(32), cell_id VARCHAR(32), auto_score FLOAT, manual_score FLOAT, extra_credit FLOAT, needs_manual_grade BOOLEAN NOT NULL, PRIMARY KEY (id), UNIQUE (cell_id, notebook_id), FOREIGN KEY(notebook_id) REFERENCES submitted_notebook (id), FOREIGN KEY(cell_id) REFERENCES base_cell (id));
`

// fixture: assignment ps1 with notebooks p1 (grade cells 3 + 2) and p2
// (grade cell 4, task cell 1): max 10. Another assignment ps2 must not leak in.
const data = `
INSERT INTO course VALUES ('default');
INSERT INTO student VALUES ('alice','A','L','a@x', 'lms-a'), ('bob', NULL, NULL, NULL, NULL), ('carol', NULL, NULL, NULL, NULL), ('dave', NULL, NULL, NULL, NULL);
INSERT INTO assignment VALUES ('a1','ps1','2026-11-20 00:00:00.000000','default'), ('a2','ps2',NULL,'default');
INSERT INTO notebook VALUES ('n1','p1','a1',NULL), ('n2','p2','a1',NULL), ('n3','q1','a2',NULL);
INSERT INTO base_cell VALUES ('c1','q1','n1','GradeCell'),('c2','q2','n1','GradeCell'),('c3','q3','n2','GradeCell'),('c4','t1','n2','TaskCell'),('c5','x','n3','GradeCell');
INSERT INTO grade_cells VALUES (3,'code','c1'),(2,'code','c2'),(4,'markdown','c3'),(100,'code','c5');
INSERT INTO task_cells VALUES (1,'markdown','c4');
-- alice: auto 3 + manual 1.5 overriding auto 2 + auto 4 with extra credit 0.5 + task manual 1; late 2 (1.5 + 0.5)
INSERT INTO submitted_assignment VALUES ('sa1','a1','alice','2026-11-21 10:30:00.123456',NULL);
INSERT INTO submitted_notebook VALUES ('sn1','sa1','n1',0,1.5),('sn2','sa1','n2',0,0.5);
INSERT INTO grade VALUES ('g1','sn1','c1',3,NULL,NULL,0),('g2','sn1','c2',2,1.5,NULL,0),('g3','sn2','c3',4,NULL,0.5,0),('g4','sn2','c4',NULL,1,NULL,0);
-- bob: written answer not graded yet (no score: counts 0, extra credit ignored), flagged
INSERT INTO submitted_assignment VALUES ('sa2','a1','bob',NULL,NULL);
INSERT INTO submitted_notebook VALUES ('sn3','sa2','n1',0,NULL),('sn4','sa2','n2',0,NULL);
INSERT INTO grade VALUES ('g5','sn3','c1',1,NULL,NULL,0),('g6','sn3','c2',0,NULL,NULL,0),('g7','sn4','c3',NULL,NULL,2,1),('g8','sn4','c4',NULL,NULL,NULL,1);
-- carol: submitted, no grades at all yet (not autograded): 0
INSERT INTO submitted_assignment VALUES ('sa3','a1','carol',NULL,NULL);
-- dave: ps2 only
INSERT INTO submitted_assignment VALUES ('sa4','a2','dave',NULL,NULL);
INSERT INTO submitted_notebook VALUES ('sn5','sa4','n3',0,0);
INSERT INTO grade VALUES ('g9','sn5','c5',50,NULL,NULL,0);
`

func fixture(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gradebook.db")
	db, err := sql.Open("sqlite3", p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(schema + data); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRead(t *testing.T) {
	p := fixture(t)
	before, _ := os.ReadFile(p)
	a, err := Read(context.Background(), p, "ps1")
	if err != nil {
		t.Fatal(err)
	}
	if a.MaxScore != 10 {
		t.Errorf("max = %v, want 10", a.MaxScore)
	}
	if len(a.Notebooks) != 2 || a.Notebooks[0] != "p1" || a.Notebooks[1] != "p2" {
		t.Errorf("notebooks = %v", a.Notebooks)
	}
	if len(a.Submissions) != 3 {
		t.Fatalf("submissions = %+v", a.Submissions)
	}
	want := []struct {
		id, lms     string
		score, late float64
		manual      bool
		ts          time.Time
	}{
		// 3 + 1.5 + (4+0.5) + 1 = 10, minus 2
		{"alice", "lms-a", 8, 2, false, time.Date(2026, 11, 21, 10, 30, 0, 123456000, time.UTC)},
		{"bob", "", 1, 0, true, time.Time{}},
		{"carol", "", 0, 0, false, time.Time{}},
	}
	for i, w := range want {
		s := a.Submissions[i]
		if s.StudentID != w.id || s.LMSUserID != w.lms || math.Abs(s.Score-w.score) > 1e-9 || s.LatePenalty != w.late ||
			s.NeedsManualGrade != w.manual || s.MaxScore != 10 || !s.Timestamp.Equal(w.ts) {
			t.Errorf("submission %d = %+v, want %+v", i, s, w)
		}
	}
	after, _ := os.ReadFile(p)
	if string(before) != string(after) {
		t.Error("the gradebook was modified")
	}
}

func TestReadErrors(t *testing.T) {
	p := fixture(t)
	if _, err := Read(context.Background(), p, "nope"); !errors.Is(err, ErrNoAssignment) {
		t.Errorf("unknown assignment: %v", err)
	}
	if _, err := Read(context.Background(), filepath.Join(t.TempDir(), "missing.db"), "ps1"); err == nil {
		t.Error("missing gradebook: no error")
	}
	// Read-only: a missing file is not created.
	if _, err := os.Stat(filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Error("missing gradebook was created")
	}
	bad := filepath.Join(t.TempDir(), "bad.db")
	os.WriteFile(bad, []byte("not sqlite"), 0o644)
	if _, err := Read(context.Background(), bad, "ps1"); err == nil {
		t.Error("garbage gradebook: no error")
	}
}

func TestReadOnlyFile(t *testing.T) {
	p := fixture(t)
	if err := os.Chmod(p, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(p), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Dir(p), 0o755) })
	if _, err := Read(context.Background(), p, "ps1"); err != nil {
		t.Errorf("read-only gradebook in a read-only directory: %v", err)
	}
}
