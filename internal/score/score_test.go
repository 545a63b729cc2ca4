package score

import (
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in    string
		outOf float64
		want  string
		err   string
	}{
		{"0.85", 0, "0.85", ""},
		{"1", 0, "1", ""},
		{"0", 0, "0", ""},
		{".5", 0, "0.5", ""},
		{"85%", 0, "0.85", ""},
		{"100%", 0, "1", ""},
		{"17/20", 0, "0.85", ""},
		{"20/20", 0, "1", ""},
		{"17", 20, "0.85", ""},
		{" 0.85 ", 0, "0.85", ""},
		{"1/3", 0, "0.3333333333333333", ""},
		{"NaN", 0, "", "not a decimal"},
		{"Inf", 0, "", "not a decimal"},
		{"-0.1", 0, "", "negative"},
		{"1.01", 0, "", "above the maximum"},
		{"101%", 0, "", "above the maximum"},
		{"21/20", 0, "", "above the maximum"},
		{"1/0", 0, "", "greater than 0"},
		{"1e-3", 0, "", "not a decimal"},
		{"0x1p-2", 0, "", "not a decimal"},
		{"", 0, "", "empty"},
		{"abc", 0, "", "not a decimal"},
		{"85%", 20, "", "cannot be combined"},
		{"1/2", 20, "", "cannot be combined"},
		{"25", 20, "", "above the maximum"},
		{"٣", 0, "", "not a decimal"},
	}
	for _, c := range cases {
		s, err := Parse(c.in, c.outOf)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q, %v): err %v, want %q", c.in, c.outOf, err, c.err)
			}
			continue
		}
		if err != nil || s.Text() != c.want {
			t.Errorf("Parse(%q, %v) = %q, %v; want %q", c.in, c.outOf, s.Text(), err, c.want)
		}
	}
	if _, err := Parse("1", math.NaN()); err == nil {
		t.Error("NaN --out-of accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0.85", "85%", "17/20", "NaN", "-1", "1e9", "9999999999999999999999/1"} {
		f.Add(s, 0.0)
	}
	f.Fuzz(func(t *testing.T, in string, outOf float64) {
		s, err := Parse(in, outOf)
		if err != nil {
			return
		}
		if math.IsNaN(s.Result) || s.Result < 0 || s.Result > 1 {
			t.Fatalf("Parse(%q, %v) gave result %v outside [0,1]", in, outOf, s.Result)
		}
		if strings.ContainsAny(s.Text(), "eE") {
			t.Fatalf("exponent in %q", s.Text())
		}
	})
}
