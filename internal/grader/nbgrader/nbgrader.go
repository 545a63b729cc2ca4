// Package nbgrader reads an nbgrader gradebook.db (read-only) and computes
// each submission's score the way nbgrader computes it on read
// (nbgrader/api.py): a grade is its manual score if set, else its auto
// score, plus its extra credit (nothing when neither score is set); a
// submission's score is the sum of its grades minus the late-submission
// penalties of its notebooks; the assignment's maximum is the sum of the
// max scores of its grade cells and task cells.
package nbgrader

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3"
)

// ErrNoAssignment is returned when the gradebook has no assignment of that name.
var ErrNoAssignment = errors.New("no such assignment in the gradebook")

// Submission is one student's submitted assignment, scored.
type Submission struct {
	StudentID        string    `json:"student_id"`
	LMSUserID        string    `json:"lms_user_id,omitempty"`
	Score            float64   `json:"score"`     // sum of grades + extra credit − late penalty
	MaxScore         float64   `json:"max_score"` // the assignment's maximum
	LatePenalty      float64   `json:"late_submission_penalty,omitempty"`
	NeedsManualGrade bool      `json:"needs_manual_grade"`
	Timestamp        time.Time `json:"timestamp,omitzero"`
}

// Assignment is what push needs of an assignment and its submissions.
type Assignment struct {
	Name        string
	MaxScore    float64
	Notebooks   []string // notebook names (without .ipynb), sorted
	Submissions []Submission
}

// DSN is the read-only data source name for a gradebook file.
func DSN(path string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro&immutable=0"
}

// Read opens the gradebook at path read-only and scores every submission of
// the named assignment, ordered by student id.
func Read(ctx context.Context, path, assignment string) (*Assignment, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("gradebook: %w", err)
	}
	db, err := sql.Open("sqlite3", DSN(path))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	var assignmentID string
	err = db.QueryRowContext(ctx, `SELECT id FROM assignment WHERE name = ?`, assignment).Scan(&assignmentID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", ErrNoAssignment, assignment)
	}
	if err != nil {
		return nil, fmt.Errorf("gradebook %s: %w", path, err)
	}
	a := &Assignment{Name: assignment}

	// Grade cells and task cells inherit base_cell (joined-table
	// inheritance), which holds the notebook.
	err = db.QueryRowContext(ctx, `
SELECT
  (SELECT COALESCE(SUM(gc.max_score), 0.0) FROM grade_cells gc
     JOIN base_cell bc ON bc.id = gc.id JOIN notebook n ON n.id = bc.notebook_id
    WHERE n.assignment_id = ?1)
+ (SELECT COALESCE(SUM(tc.max_score), 0.0) FROM task_cells tc
     JOIN base_cell bc ON bc.id = tc.id JOIN notebook n ON n.id = bc.notebook_id
    WHERE n.assignment_id = ?1)`, assignmentID).Scan(&a.MaxScore)
	if err != nil {
		return nil, fmt.Errorf("gradebook %s: max score: %w", path, err)
	}

	rows, err := db.QueryContext(ctx, `SELECT name FROM notebook WHERE assignment_id = ? ORDER BY name`, assignmentID)
	if err != nil {
		return nil, fmt.Errorf("gradebook %s: notebooks: %w", path, err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		a.Notebooks = append(a.Notebooks, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = db.QueryContext(ctx, `
SELECT sa.student_id, COALESCE(s.lms_user_id, ''), sa.timestamp,
  (SELECT COALESCE(SUM(CASE
       WHEN g.manual_score IS NOT NULL THEN g.manual_score + COALESCE(g.extra_credit, 0.0)
       WHEN g.auto_score IS NOT NULL THEN g.auto_score + COALESCE(g.extra_credit, 0.0)
       ELSE 0.0 END), 0.0)
     FROM grade g JOIN submitted_notebook sn ON sn.id = g.notebook_id
    WHERE sn.assignment_id = sa.id),
  (SELECT COALESCE(SUM(sn.late_submission_penalty), 0.0)
     FROM submitted_notebook sn WHERE sn.assignment_id = sa.id),
  EXISTS (SELECT 1 FROM grade g JOIN submitted_notebook sn ON sn.id = g.notebook_id
           WHERE sn.assignment_id = sa.id AND g.needs_manual_grade)
FROM submitted_assignment sa LEFT JOIN student s ON s.id = sa.student_id
WHERE sa.assignment_id = ?
ORDER BY sa.student_id`, assignmentID)
	if err != nil {
		return nil, fmt.Errorf("gradebook %s: submissions: %w", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s Submission
		var ts any
		var raw float64
		var manual int64
		if err := rows.Scan(&s.StudentID, &s.LMSUserID, &ts, &raw, &s.LatePenalty, &manual); err != nil {
			return nil, fmt.Errorf("gradebook %s: submissions: %w", path, err)
		}
		s.Score = raw - s.LatePenalty
		s.MaxScore = a.MaxScore
		s.NeedsManualGrade = manual != 0
		s.Timestamp = parseTime(ts)
		a.Submissions = append(a.Submissions, s)
	}
	return a, rows.Err()
}

// parseTime reads SQLAlchemy's DateTime (naive UTC, "2006-01-02 15:04:05.000000"),
// which the driver may already have turned into a time.Time.
func parseTime(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t.UTC()
	case []byte:
		return parseTime(string(t))
	case string:
		s := strings.TrimSpace(t)
		for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00"} {
			if p, err := time.Parse(layout, s); err == nil {
				return p.UTC()
			}
		}
	}
	return time.Time{}
}
