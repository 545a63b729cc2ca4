package batch

import (
	"errors"
	"strings"
	"testing"
)

func TestReadCSVAndJSONL(t *testing.T) {
	csvIn := "\ufeffusername,notebook,score,out_of,comment\nalice,hw1/hw1.ipynb,0.85,,good\n\n\"bob\",/home/jupyter-bob/hw1/hw1.ipynb,17,20,\"a, b\"\n"
	rows, err := Read(strings.NewReader(csvIn))
	if err != nil || len(rows) != 2 {
		t.Fatalf("csv: %v %+v", err, rows)
	}
	if rows[1].OutOf != 20 || rows[1].Comment != "a, b" || rows[1].Line != 4 || rows[0].Comment != "good" {
		t.Fatalf("csv rows: %+v", rows)
	}
	jl := `{"username":"alice","notebook":"hw1/hw1.ipynb","score":0.85}
{"notebook":"/home/jupyter-bob/hw1/hw1.ipynb","score":"17/20","comment":"ok"}`
	rows, err = Read(strings.NewReader(jl))
	if err != nil || len(rows) != 2 || rows[0].Score != "0.85" || rows[1].Score != "17/20" || rows[1].Line != 2 {
		t.Fatalf("jsonl: %v %+v", err, rows)
	}
}

func TestReadErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "empty input",
		"user,notebook,score\n":               "unknown column",
		"username,score\nalice,1\n":           `no "notebook" column`,
		"notebook,score\nx,\n":                "line 2: score is empty",
		"notebook,score,out_of\nx,1,-3\n":     "line 2: out_of",
		"notebook,score\n\"x,1\n":             "line 2",
		`{"notebook":"x","score":1,"bad":2}`:  "unknown field",
		`{"notebook":"x","score":[1]}`:        "score must be",
		`{"notebook":"x","score":1}{"a":1}`:   "more than one JSON value",
		"notebook,score\n\xff,1\n":            "UTF-8",
		`{"notebook":"x\u0000y","score":"1"}`: "NUL",
	} {
		_, err := Read(strings.NewReader(in))
		var ie *InvalidError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add("username,notebook,score\nalice,hw1.ipynb,0.5\n")
	f.Add(`{"notebook":"x","score":"85%"}`)
	f.Fuzz(func(t *testing.T, in string) {
		rows, err := Read(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Notebook == "" || r.Score == "" || r.Line < 1 {
				t.Fatalf("invalid row accepted: %+v", r)
			}
		}
	})
}
