package otter

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// current is what otter grade 6 writes: the points row first, question
// columns sorted, a submission whose grading failed.
const current = `file,q1,q2,q3,total_points_earned,percent_correct,grading_status
points-per-question,2.0,3.0,2.0,7.0,1.0,--
alice.ipynb,2.0,3.0,2.0,7.0,1.0,Completed
bob.ipynb,1.0,0.0,1.0,2.0,0.2857,Completed
carol.ipynb,0,0,0,0,0.0,Timeout error: notebook took too long
dave.ipynb,,,,,,
`

func TestParseCurrent(t *testing.T) {
	rows, err := Parse(strings.NewReader(current))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("rows = %+v", rows)
	}
	if r := rows[0]; r.File != "alice.ipynb" || r.Score != 1 || r.Failed != "" || r.Line != 3 {
		t.Errorf("alice = %+v", r)
	}
	// earned/possible, not the rounded percent_correct
	if r := rows[1]; math.Abs(r.Score-2.0/7) > 1e-12 || r.Possible != 7 || r.Earned != 2 || r.Failed != "" {
		t.Errorf("bob = %+v", r)
	}
	if r := rows[2]; !strings.Contains(r.Failed, "Timeout error") {
		t.Errorf("carol = %+v", r)
	}
	if r := rows[3]; !strings.Contains(r.Failed, "no grading status") {
		t.Errorf("dave = %+v", r)
	}
}

func TestParseOptionalColumns(t *testing.T) {
	// older otter: no points row, no total, no status; percent_correct a ratio
	rows, err := Parse(strings.NewReader("\ufefffile,q1,percent_correct\nsubmissions/alice.ipynb,1,0.85\nbob.ipynb,0,\n\nx.ipynb,1,1.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Score != 0.85 || rows[0].Failed != "" || !strings.Contains(rows[1].Failed, "no score") ||
		!strings.Contains(rows[2].Failed, "outside") || rows[2].Line != 5 {
		t.Errorf("rows = %+v", rows)
	}
	// total without a points row falls back to percent_correct
	rows, err = Parse(strings.NewReader("file,total_points_earned,percent_correct,grading_status\na.ipynb,3,0.75,Completed\n"))
	if err != nil || len(rows) != 1 || rows[0].Score != 0.75 {
		t.Errorf("rows = %+v, %v", rows, err)
	}
	// every submission failed: otter writes no points row
	rows, err = Parse(strings.NewReader("file,total_points_earned,percent_correct,grading_status\na.ipynb,0,0,boom\n"))
	if err != nil || len(rows) != 1 || rows[0].Failed == "" {
		t.Errorf("rows = %+v, %v", rows, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "name,score\nx,1\n", "file,q1\nx,1\n", "file,percent_correct\n\"a,1\n"} {
		if _, err := Parse(strings.NewReader(in)); err == nil {
			t.Errorf("Parse(%q): no error", in)
		}
	}
}

func TestPattern(t *testing.T) {
	for _, c := range []struct{ pat, file, user string }{
		{"{username}.ipynb", "alice.ipynb", "alice"},
		{"{username}.ipynb", "alice.txt", ""},
		{"{username}.ipynb", ".ipynb", ""},
		{"{username}.ipynb", "a/b.ipynb", ""},
		{"submissions/{username}/hw1.ipynb", "submissions/bob/hw1.ipynb", "bob"},
		{"submissions/{username}/hw1.ipynb", "submissions/bob/hw2.ipynb", ""},
		{"hw1-{username}.ipynb", "hw1-*.ipynb", "*"}, // literal, no globbing
		{"{username}_hw1.ipynb", "_hw1.ipynb", ""},
		{"{username}", "..", ""},
	} {
		p, err := ParsePattern(c.pat)
		if err != nil {
			t.Fatal(err)
		}
		u, ok := p.Username(c.file)
		if u != c.user || ok != (c.user != "") {
			t.Errorf("%s on %q = %q %v, want %q", c.pat, c.file, u, ok, c.user)
		}
	}
	for _, bad := range []string{"alice.ipynb", "{username}/{username}.ipynb", ""} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q): no error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(current))
	f.Add([]byte("file,percent_correct\na,0.5\n"))
	f.Add([]byte("file,total_points_earned\npoints-per-question,0\na,1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Failed != "" {
				continue
			}
			if r.File == "" || math.IsNaN(r.Score) || r.Score < 0 || r.Score > 1 || r.Line < 1 {
				t.Fatalf("sendable row %+v", r)
			}
		}
	})
}
