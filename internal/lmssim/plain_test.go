package lmssim

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/lti11"
)

// What ltigrade sends must take the simulator's fast path and read there
// as xml.Unmarshal reads it.
func TestPlainRequestReadsWhatBuildPOXWrites(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for name, rr := range map[string]lti11.ResultRequest{
		"replace": {Op: lti11.ReplaceResult, SourcedID: "sid & <co>", MessageID: "m1", Score: "0.85", ResultDataText: "well \"done\"", SubmittedAt: &at},
		"url":     {Op: lti11.ReplaceResult, SourcedID: "sid", MessageID: "m4", Score: "1", ResultDataURL: "https://x/y?a=1&b=2"},
		"read":    {Op: lti11.ReadResult, SourcedID: "sid", MessageID: "m2"},
		"delete":  {Op: lti11.DeleteResult, SourcedID: "sid", MessageID: "m3"},
	} {
		body, err := lti11.BuildPOX(rr)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := parsePlainRequest(body)
		if !ok {
			t.Errorf("%s: not read by the fast path:\n%s", name, body)
			continue
		}
		slow, err := parseRequestXML(body)
		if err != nil || !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s: fast %+v, xml.Unmarshal %+v %v", name, fast, slow, err)
		}
		if fast.sourcedID != rr.SourcedID || fast.op != string(rr.Op) || (rr.Op == lti11.ReplaceResult && (fast.score == nil || *fast.score != rr.Score)) {
			t.Errorf("%s: read as %+v", name, fast)
		}
	}
}

// Hostile nesting stays cheap: the fast path stops at its depth limit and
// leaves the body to xml.Unmarshal.
func TestPlainRequestDeepNesting(t *testing.T) {
	deep := "<imsx_POXEnvelopeRequest><imsx_POXBody>" + strings.Repeat("<a>", 100000) + strings.Repeat("</a>", 100000) + "</imsx_POXBody></imsx_POXEnvelopeRequest>"
	start := time.Now()
	if _, ok := parsePlainRequest([]byte(deep)); ok {
		t.Error("the fast path read 100,000 levels")
	}
	// xml.Unmarshal reads the outer <a> as an operation named "a", which
	// the simulator then answers as unsupported.
	if r, err := parseRequest([]byte(deep)); err == nil && r.op != "a" {
		t.Errorf("read as %+v", r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

// FuzzParsePlainRequest: whatever the fast path reads, xml.Unmarshal reads
// the same way.
func FuzzParsePlainRequest(f *testing.F) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b, _ := lti11.BuildPOX(lti11.ResultRequest{Op: lti11.ReplaceResult, SourcedID: "s", MessageID: "m", Score: "0.5", ResultDataText: "t", SubmittedAt: &at})
	f.Add(b)
	b, _ = lti11.BuildPOX(lti11.ResultRequest{Op: lti11.ReadResult, SourcedID: "s", MessageID: "m"})
	f.Add(b)
	f.Add([]byte(`<imsx_POXEnvelopeRequest><imsx_POXBody><aRequest><resultRecord><sourcedGUID><sourcedId>x</sourcedId></sourcedGUID><result><resultScore><textString/></resultScore></result></resultRecord></aRequest></imsx_POXBody></imsx_POXEnvelopeRequest>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := parsePlainRequest(body)
		if !ok {
			return
		}
		slow, err := parseRequestXML(body)
		if err != nil {
			t.Fatalf("fast path read what xml.Unmarshal refuses (%v): %+v", err, fast)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast %+v, xml.Unmarshal %+v", fast, slow)
		}
	})
}
