// Package score parses the scores graders write ("0.85", "85%", "17/20",
// or points with an explicit maximum) into the fraction LTI 1.1 sends.
package score

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Score is a parsed score.
type Score struct {
	Given   float64 // points given (equals Result when no maximum applies)
	Maximum float64 // the maximum (1 for a plain fraction)
	Result  float64 // Given/Maximum, in [0, 1]
}

// Text is the decimal LTI 1.1 puts in resultScore/textString: shortest
// round-tripping form, never an exponent.
func (s Score) Text() string { return strconv.FormatFloat(s.Result, 'f', -1, 64) }

// decimal accepts plain decimals only: ParseFloat would also take "NaN",
// "Inf", "1e3", "0x1p-2" and "1_0", none of which a grader means.
var decimal = regexp.MustCompile(`^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$`)

func parseNumber(s, what string) (float64, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0, fmt.Errorf("%s is empty", what)
	case strings.HasPrefix(s, "-"):
		return 0, fmt.Errorf("%s %q is negative", what, s)
	case len(s) > 64:
		return 0, fmt.Errorf("%s is too long", what)
	case !decimal.MatchString(s):
		return 0, fmt.Errorf("%s %q is not a decimal number (want e.g. 0.85, 85%%, 17/20)", what, s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s %q is not a finite number", what, s)
	}
	return v, nil
}

// Parse reads text as a fraction ("0.85"), a percentage ("85%") or points
// over a maximum ("17/20"). outOf > 0 means text is points out of outOf.
func Parse(text string, outOf float64) (Score, error) {
	if math.IsNaN(outOf) || math.IsInf(outOf, 0) || outOf < 0 {
		return Score{}, errors.New("--out-of must be a positive finite number")
	}
	t := strings.TrimSpace(text)
	var s Score
	switch {
	case strings.HasSuffix(t, "%"):
		if outOf > 0 {
			return Score{}, errors.New("a percentage cannot be combined with --out-of")
		}
		v, err := parseNumber(strings.TrimSuffix(t, "%"), "score")
		if err != nil {
			return Score{}, err
		}
		s = Score{Given: v, Maximum: 100}
	case strings.Contains(t, "/"):
		if outOf > 0 {
			return Score{}, errors.New("a fraction like 17/20 cannot be combined with --out-of")
		}
		num, den, _ := strings.Cut(t, "/")
		g, err := parseNumber(num, "score")
		if err != nil {
			return Score{}, err
		}
		m, err := parseNumber(den, "maximum")
		if err != nil {
			return Score{}, err
		}
		s = Score{Given: g, Maximum: m}
	default:
		v, err := parseNumber(t, "score")
		if err != nil {
			return Score{}, err
		}
		s = Score{Given: v, Maximum: 1}
		if outOf > 0 {
			s.Maximum = outOf
		}
	}
	if s.Maximum <= 0 {
		return Score{}, errors.New("the maximum must be greater than 0")
	}
	if s.Given > s.Maximum {
		if s.Maximum == 1 && outOf == 0 && !strings.ContainsAny(t, "%/") {
			return Score{}, &AboveOneError{Given: s.Given}
		}
		return Score{}, fmt.Errorf("score %s is above the maximum %s", fmtNum(s.Given), fmtNum(s.Maximum))
	}
	s.Result = s.Given / s.Maximum
	if s.Maximum == 1 {
		s.Result = s.Given
	}
	// Guard rounding so that e.g. 20/20 is exactly 1 and never 1.0000000000000002.
	s.Result = math.Min(1, math.Max(0, s.Result))
	return s, nil
}

// AboveOneError is a plain score above 1: most likely a percentage without
// its % or points without their maximum, which the message suggests.
type AboveOneError struct {
	Given float64
}

func (e *AboveOneError) Error() string { return e.Message("--out-of") }

// Message words the error for a caller that takes the maximum as outOf
// (the --out-of flag, a batch's out_of column).
func (e *AboveOneError) Message(outOf string) string {
	g := fmtNum(e.Given)
	if e.Given <= 100 {
		return fmt.Sprintf("score %s is above 1: did you mean %s%% or %s 100?", g, g, outOf)
	}
	return fmt.Sprintf("score %s is above 1: did you mean points out of a maximum (%s MAXIMUM)?", g, outOf)
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
