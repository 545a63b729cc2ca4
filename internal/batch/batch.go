// Package batch reads the rows of `ltigrade score --batch`: CSV with a
// header, or JSON lines, one score per row.
package batch

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Row is one score to send.
type Row struct {
	Line     int     `json:"line"`               // 1-based line (CSV: record) of the input, for messages
	Username string  `json:"username,omitempty"` // hub user; "" means take it from an absolute Notebook path
	Notebook string  `json:"notebook"`           // absolute, or inside the user's notebook root
	Score    string  `json:"score"`              // "0.85", "85%", "17/20", or points with OutOf
	OutOf    float64 `json:"out_of,omitempty"`   // > 0: Score is points out of OutOf
	Comment  string  `json:"comment,omitempty"`
}

// MaxInput bounds what Read accepts: a class's scores are kilobytes.
const MaxInput = 64 << 20

// MaxRows bounds the rows of one batch.
const MaxRows = 1_000_000

// InvalidError says what is wrong with the input, and where.
type InvalidError struct {
	Line int
	Msg  string
}

func (e *InvalidError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("batch line %d: %s", e.Line, e.Msg)
	}
	return "batch: " + e.Msg
}

// Read reads CSV (first non-blank byte not "{") or JSON lines.
func Read(r io.Reader) ([]Row, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxInput+1))
	if err != nil {
		return nil, &InvalidError{Msg: err.Error()}
	}
	if len(data) > MaxInput {
		return nil, &InvalidError{Msg: fmt.Sprintf("input larger than %d MiB", MaxInput>>20)}
	}
	if !utf8.Valid(data) {
		return nil, &InvalidError{Msg: "input is not valid UTF-8"}
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return readJSONL(data)
	}
	return readCSV(data)
}

var columns = map[string]bool{"username": true, "notebook": true, "score": true, "out_of": true, "comment": true}

func readCSV(data []byte) ([]Row, error) {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err == io.EOF {
		return nil, &InvalidError{Msg: "empty input: want a CSV header (username,notebook,score[,out_of,comment]) or JSON lines"}
	}
	if err != nil {
		return nil, &InvalidError{Line: 1, Msg: err.Error()}
	}
	idx := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !columns[h] {
			return nil, &InvalidError{Line: 1, Msg: fmt.Sprintf("unknown column %q (want username, notebook, score, out_of, comment)", h)}
		}
		if _, dup := idx[h]; dup {
			return nil, &InvalidError{Line: 1, Msg: fmt.Sprintf("column %q twice", h)}
		}
		idx[h] = i
	}
	for _, need := range []string{"notebook", "score"} {
		if _, ok := idx[need]; !ok {
			return nil, &InvalidError{Line: 1, Msg: fmt.Sprintf("no %q column", need)}
		}
	}
	var rows []Row
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, &InvalidError{Line: pe.Line, Msg: pe.Err.Error()}
			}
			return nil, &InvalidError{Msg: err.Error()}
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		get := func(k string) string {
			if i, ok := idx[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		row := Row{Line: line, Username: get("username"), Notebook: get("notebook"), Score: get("score"), Comment: get("comment")}
		if s := get("out_of"); s != "" {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
				return nil, &InvalidError{Line: line, Msg: fmt.Sprintf("out_of %q is not a positive number", s)}
			}
			row.OutOf = v
		}
		if err := check(&row); err != nil {
			return nil, err
		}
		rows = append(rows, row)
		if len(rows) > MaxRows {
			return nil, &InvalidError{Msg: fmt.Sprintf("more than %d rows", MaxRows)}
		}
	}
	if len(rows) == 0 {
		return nil, &InvalidError{Msg: "no rows after the header"}
	}
	return rows, nil
}

func readJSONL(data []byte) ([]Row, error) {
	var rows []Row
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		t := bytes.TrimSpace(sc.Bytes())
		if len(t) == 0 {
			continue
		}
		var raw struct {
			Username *string         `json:"username"`
			Notebook *string         `json:"notebook"`
			Score    json.RawMessage `json:"score"`
			OutOf    *float64        `json:"out_of"`
			Comment  *string         `json:"comment"`
		}
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&raw); err != nil {
			return nil, &InvalidError{Line: line, Msg: "invalid JSON: " + err.Error()}
		}
		if dec.More() {
			return nil, &InvalidError{Line: line, Msg: "more than one JSON value on the line"}
		}
		row := Row{Line: line}
		if raw.Username != nil {
			row.Username = strings.TrimSpace(*raw.Username)
		}
		if raw.Notebook != nil {
			row.Notebook = strings.TrimSpace(*raw.Notebook)
		}
		if raw.Comment != nil {
			row.Comment = *raw.Comment
		}
		// score may be a JSON number or a string ("85%", "17/20").
		if len(raw.Score) > 0 {
			var s string
			if err := json.Unmarshal(raw.Score, &s); err != nil {
				var n json.Number
				d := json.NewDecoder(bytes.NewReader(raw.Score))
				d.UseNumber()
				if err := d.Decode(&n); err != nil {
					return nil, &InvalidError{Line: line, Msg: "score must be a number or a string"}
				}
				s = n.String()
			}
			row.Score = strings.TrimSpace(s)
		}
		if raw.OutOf != nil {
			if *raw.OutOf <= 0 {
				return nil, &InvalidError{Line: line, Msg: "out_of must be positive"}
			}
			row.OutOf = *raw.OutOf
		}
		if err := check(&row); err != nil {
			return nil, err
		}
		rows = append(rows, row)
		if len(rows) > MaxRows {
			return nil, &InvalidError{Msg: fmt.Sprintf("more than %d rows", MaxRows)}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &InvalidError{Line: line + 1, Msg: err.Error()}
	}
	if len(rows) == 0 {
		return nil, &InvalidError{Msg: "no rows"}
	}
	return rows, nil
}

func check(r *Row) error {
	switch {
	case r.Notebook == "":
		return &InvalidError{Line: r.Line, Msg: "notebook is empty"}
	case r.Score == "":
		return &InvalidError{Line: r.Line, Msg: "score is empty"}
	case strings.ContainsRune(r.Notebook+r.Username, 0):
		return &InvalidError{Line: r.Line, Msg: "NUL byte in notebook or username"}
	case len(r.Comment) > 64<<10:
		return &InvalidError{Line: r.Line, Msg: "comment longer than 64 KiB"}
	}
	return nil
}
