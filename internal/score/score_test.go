package score

import (
	"errors"
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
		{"1.01", 0, "", "score 1.01 is above 1: did you mean 1.01% or --out-of 100?"},
		{"85", 0, "", "score 85 is above 1: did you mean 85% or --out-of 100?"},
		{"150", 0, "", "score 150 is above 1: did you mean points out of a maximum (--out-of MAXIMUM)?"},
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

// A batch takes the maximum from a column, so it words the hint itself.
func TestAboveOneMessage(t *testing.T) {
	_, err := Parse("85", 0)
	var a *AboveOneError
	if !errors.As(err, &a) || a.Message("out_of") != "score 85 is above 1: did you mean 85% or out_of 100?" {
		t.Errorf("err = %v", err)
	}
	for _, in := range []string{"21/20", "101%"} {
		if _, err := Parse(in, 0); errors.As(err, &a) {
			t.Errorf("%s: %v is not a plain score above 1", in, err)
		}
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
