// Package otter reads otter-grader's final_grades.csv.
//
// otter grade (otter/grade/utils.py) writes the columns file, one column per
// question, total_points_earned, percent_correct and grading_status; when at
// least one submission graded, the first data row is file=points-per-question
// with the points possible. percent_correct is a ratio (0–1) rounded to four
// digits; grading_status is "Completed" or the error of a submission whose
// grading failed. The file column is the submission's file name (otter uses
// its base name).
package otter

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// PointsPossible is the file value of the row holding the points possible.
const PointsPossible = "points-per-question"

// Row is one graded submission.
type Row struct {
	Line     int     `json:"line"` // 1-based line of the CSV record
	File     string  `json:"file"`
	Earned   float64 `json:"total_points_earned,omitempty"`
	Possible float64 `json:"points_possible,omitempty"` // 0 when unknown
	// Score is the fraction (0–1): earned/possible when both are known,
	// else percent_correct.
	Score float64 `json:"score"`
	// Failed is why the row cannot be sent ("" when it can): grading
	// failed, or no score could be computed.
	Failed string `json:"failed,omitempty"`
}

// Parse reads final_grades.csv. It fails only when the file is not a CSV
// with a file column and at least one of total_points_earned and
// percent_correct; rows that cannot be scored come back with Failed set.
func Parse(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty CSV: no header")
	}
	if err != nil {
		return nil, fmt.Errorf("CSV header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if _, dup := col[h]; !dup {
			col[h] = i
		}
	}
	fileCol, ok := col["file"]
	if !ok {
		return nil, errors.New(`CSV has no "file" column: not otter's final_grades.csv`)
	}
	totalCol, hasTotal := col["total_points_earned"]
	pctCol, hasPct := col["percent_correct"]
	statusCol, hasStatus := col["grading_status"]
	if !hasTotal && !hasPct {
		return nil, errors.New(`CSV has neither "total_points_earned" nor "percent_correct"`)
	}
	field := func(rec []string, i int) string {
		if i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	type record struct {
		line int
		rec  []string
	}
	var recs []record
	var possible float64
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if field(rec, fileCol) == PointsPossible {
			if hasTotal {
				if v, ok := number(field(rec, totalCol)); ok && v > 0 {
					possible = v
				}
			}
			continue
		}
		if len(rec) == 1 && field(rec, 0) == "" {
			continue // blank line
		}
		recs = append(recs, record{line, rec})
	}
	rows := make([]Row, 0, len(recs))
	for _, r := range recs {
		row := Row{Line: r.line, File: field(r.rec, fileCol)}
		row.Failed = score(&row, r.rec, field, possible, hasTotal, totalCol, hasPct, pctCol, hasStatus, statusCol)
		rows = append(rows, row)
	}
	return rows, nil
}

func score(row *Row, rec []string, field func([]string, int) string, possible float64,
	hasTotal bool, totalCol int, hasPct bool, pctCol int, hasStatus bool, statusCol int) string {
	if row.File == "" {
		return "empty file column"
	}
	if hasStatus {
		if st := field(rec, statusCol); !strings.EqualFold(st, "Completed") {
			if st == "" {
				st = "no grading status"
			}
			return "grading failed: " + st
		}
	}
	earned, okEarned := 0.0, false
	if hasTotal {
		earned, okEarned = number(field(rec, totalCol))
	}
	pct, okPct := 0.0, false
	if hasPct {
		pct, okPct = number(field(rec, pctCol))
	}
	switch {
	case okEarned && possible > 0:
		row.Earned, row.Possible = earned, possible
		row.Score = earned / possible
	case okPct:
		row.Score = pct
		row.Earned = earned
	default:
		return "no score: total_points_earned and percent_correct are empty or not numbers"
	}
	if row.Score < 0 || row.Score > 1 {
		return fmt.Sprintf("score %s is outside 0–1", strconv.FormatFloat(row.Score, 'f', -1, 64))
	}
	return ""
}

// number parses a finite number; pandas writes NaN as an empty field.
func number(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// Pattern maps a file column value to a hub username: the pattern holds
// exactly one {username}; everything else is literal (no globbing).
type Pattern struct {
	prefix, suffix string
}

// ParsePattern checks a --user-from pattern such as "{username}.ipynb" or
// "submissions/{username}/hw1.ipynb".
func ParsePattern(p string) (Pattern, error) {
	const ph = "{username}"
	if strings.Count(p, ph) != 1 {
		return Pattern{}, fmt.Errorf("pattern %q must contain {username} exactly once", p)
	}
	i := strings.Index(p, ph)
	return Pattern{prefix: p[:i], suffix: p[i+len(ph):]}, nil
}

// Username extracts the username from a file value, or reports false when
// the value does not match or the username would be empty or contain a
// slash.
func (p Pattern) Username(file string) (string, bool) {
	if len(file) < len(p.prefix)+len(p.suffix) || !strings.HasPrefix(file, p.prefix) || !strings.HasSuffix(file, p.suffix) {
		return "", false
	}
	u := file[len(p.prefix) : len(file)-len(p.suffix)]
	if u == "" || strings.ContainsAny(u, "/\\") || u == "." || u == ".." {
		return "", false
	}
	return u, true
}

// String is the pattern as given.
func (p Pattern) String() string { return p.prefix + "{username}" + p.suffix }
