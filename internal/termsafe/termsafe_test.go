package termsafe

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestField(t *testing.T) {
	for in, want := range map[string]string{
		"Homework 1":           "Homework 1",
		"Zoë – 宿題":             "Zoë – 宿題",
		"HW\x1b[31m1":          `HW\x1b[31m1`,
		"two\nlines\tand\rcr":  "two lines and cr",
		"evil\u202Egnp.exe":    `evil\u202egnp.exe`,
		"isolate\u2066x\u2069": `isolate\u2066x\u2069`,
		"bad \xff byte":        `bad \xff byte`,
		"c1 \u009b control":    `c1 \x9b control`,
		"line\u2028separator":  `line\u2028separator`,
		"del\x7f":              `del\x7f`,
		"":                     "",
	} {
		if got := Field(in); got != want {
			t.Errorf("Field(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLinesKeepsNewlines(t *testing.T) {
	if got := Lines("a\x1b]0;x\x07\nb\u202e"); got != `a\x1b]0;x\x07`+"\n"+`b\u202e` {
		t.Errorf("got %q", got)
	}
}

func TestWriterKeepsLayoutEscapesTheRest(t *testing.T) {
	var b bytes.Buffer
	w := Writer(&b)
	in := "ok\tcol\n\r[###] 1/2 \x1b[2J title\u202e\n"
	if _, err := w.Write([]byte(in)); err != nil {
		t.Fatal(err)
	}
	want := "ok\tcol\n\r[###] 1/2 \\u001b[2J title\\u202e\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// JSON through the writer still decodes to the same value.
func TestWriterKeepsJSONMeaning(t *testing.T) {
	v := map[string]string{"title": "a\u202eb\u2066c", "name": "zoë"}
	raw, _ := json.Marshal(v)
	var b bytes.Buffer
	Writer(&b).Write(raw)
	var back map[string]string
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back["title"] != v["title"] || back["name"] != v["name"] {
		t.Fatalf("got %s -> %v %v", b.String(), back, err)
	}
	if strings.ContainsRune(b.String(), '\u202e') {
		t.Errorf("raw bidi override left in %q", b.String())
	}
}

// A rune split over two writes is passed whole.
func TestWriterSplitRune(t *testing.T) {
	var b bytes.Buffer
	w := Writer(&b)
	s := []byte("é宿")
	for i := range s {
		w.Write(s[i : i+1])
	}
	if b.String() != "é宿" {
		t.Errorf("got %q", b.String())
	}
}

func FuzzField(f *testing.F) {
	f.Add("Homework\x1b[1m\u202e\n")
	f.Fuzz(func(t *testing.T, s string) {
		out := Field(s)
		if !utf8.ValidString(out) || strings.ContainsAny(out, "\n\r\t\x1b") || needsEscape(out) {
			t.Fatalf("Field(%q) = %q is not safe", s, out)
		}
		var b bytes.Buffer
		Writer(&b).Write([]byte(s))
		if needsEscape(b.String()) {
			t.Fatalf("Writer(%q) = %q is not safe", s, b.String())
		}
	})
}
