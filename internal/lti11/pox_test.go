package lti11

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// poxRequest is a test-side view of a request envelope, decoded with the
// standard library so BuildPOX is checked against an independent reader.
type poxRequest struct {
	XMLName   xml.Name `xml:"http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0 imsx_POXEnvelopeRequest"`
	Version   string   `xml:"imsx_POXHeader>imsx_POXRequestHeaderInfo>imsx_version"`
	MessageID string   `xml:"imsx_POXHeader>imsx_POXRequestHeaderInfo>imsx_messageIdentifier"`
	Body      struct {
		Inner []struct {
			XMLName     xml.Name
			SubmittedAt string `xml:"submissionDetails>submittedAt"`
			SourcedID   string `xml:"resultRecord>sourcedGUID>sourcedId"`
			Language    string `xml:"resultRecord>result>resultScore>language"`
			Score       string `xml:"resultRecord>result>resultScore>textString"`
			Text        string `xml:"resultRecord>result>resultData>text"`
			URL         string `xml:"resultRecord>result>resultData>url"`
		} `xml:",any"`
	} `xml:"imsx_POXBody"`
}

func decodeRequest(t *testing.T, b []byte) poxRequest {
	t.Helper()
	var p poxRequest
	if err := xml.Unmarshal(b, &p); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	if len(p.Body.Inner) != 1 {
		t.Fatalf("body has %d operations", len(p.Body.Inner))
	}
	return p
}

func TestBuildPOXReplace(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("x", 3600))
	// Moodle's sourcedId: JSON with quotes; plus markup characters and a
	// CR LF that XML parsing would normalise unless escaped.
	sid := `{"data":{"instanceid":"2","userid":"4","typeid":null,"launchid":1},"hash":"a<b>&c'd"}` + "\r\n"
	b, err := BuildPOX(ResultRequest{Op: ReplaceResult, SourcedID: sid, MessageID: "m-1", Score: "0.85",
		ResultDataText: "see <notebook> & more", SubmittedAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Errorf("no xml declaration: %s", b)
	}
	p := decodeRequest(t, b)
	op := p.Body.Inner[0]
	if op.XMLName.Local != "replaceResultRequest" || op.SourcedID != sid || op.Score != "0.85" || op.Language != "en" ||
		op.Text != "see <notebook> & more" || op.URL != "" || op.SubmittedAt != "2024-05-06T06:08:09Z" ||
		p.MessageID != "m-1" || p.Version != "V1.0" {
		t.Errorf("round trip: %+v from %s", p, b)
	}

	b, err = BuildPOX(ResultRequest{Op: ReplaceResult, SourcedID: "s", Score: "1", ResultDataURL: "https://hub.example/a?b=1&c=2"})
	if err != nil {
		t.Fatal(err)
	}
	if op := decodeRequest(t, b).Body.Inner[0]; op.URL != "https://hub.example/a?b=1&c=2" || op.Text != "" || op.SubmittedAt != "" {
		t.Errorf("url round trip: %+v", op)
	}
	if !bytes.Contains(b, []byte("<imsx_messageIdentifier/>")) {
		t.Errorf("empty message id not rendered as empty element: %s", b)
	}
}

func TestBuildPOXReadDelete(t *testing.T) {
	for _, op := range []Op{ReadResult, DeleteResult} {
		b, err := BuildPOX(ResultRequest{Op: op, SourcedID: "abc", MessageID: "1"})
		if err != nil {
			t.Fatal(err)
		}
		p := decodeRequest(t, b).Body.Inner[0]
		if p.XMLName.Local != string(op)+"Request" || p.SourcedID != "abc" || bytes.Contains(b, []byte("<result>")) {
			t.Errorf("%s: %+v from %s", op, p, b)
		}
	}
}

func TestBuildPOXErrors(t *testing.T) {
	now := time.Now()
	for name, r := range map[string]ResultRequest{
		"unknown op":       {Op: "fooResult", SourcedID: "s"},
		"no sourcedid":     {Op: ReadResult},
		"no score":         {Op: ReplaceResult, SourcedID: "s"},
		"text and url":     {Op: ReplaceResult, SourcedID: "s", Score: "1", ResultDataText: "t", ResultDataURL: "u"},
		"read with score":  {Op: ReadResult, SourcedID: "s", Score: "1"},
		"delete with time": {Op: DeleteResult, SourcedID: "s", SubmittedAt: &now},
		"control char":     {Op: ReadResult, SourcedID: "a\x01b"},
		"invalid utf8":     {Op: ReadResult, SourcedID: "a\xffb"},
		"nonchar in text":  {Op: ReplaceResult, SourcedID: "s", Score: "1", ResultDataText: "\uFFFE"},
		"control in msgid": {Op: ReadResult, SourcedID: "s", MessageID: "\x00"},
		"whitespace score": {Op: ReplaceResult, SourcedID: "s", Score: "  "},
	} {
		if _, err := BuildPOX(r); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

const canvasSuccess = `<?xml version="1.0" encoding="UTF-8"?>
<imsx_POXEnvelopeResponse xmlns="http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0">
  <imsx_POXHeader>
    <imsx_POXResponseHeaderInfo>
      <imsx_version>V1.0</imsx_version>
      <imsx_messageIdentifier>4560</imsx_messageIdentifier>
      <imsx_statusInfo>
        <imsx_codeMajor> success </imsx_codeMajor>
        <imsx_severity>status</imsx_severity>
        <imsx_description>Score for 3124567 is now 0.92</imsx_description>
        <imsx_messageRefIdentifier>999999123</imsx_messageRefIdentifier>
        <imsx_operationRefIdentifier>replaceResult</imsx_operationRefIdentifier>
      </imsx_statusInfo>
    </imsx_POXResponseHeaderInfo>
  </imsx_POXHeader>
  <imsx_POXBody><replaceResultResponse/></imsx_POXBody>
</imsx_POXEnvelopeResponse>`

func TestParseResponse(t *testing.T) {
	r, err := ParseResponse([]byte(canvasSuccess))
	if err != nil {
		t.Fatal(err)
	}
	want := Response{CodeMajor: "success", Severity: "status", Description: "Score for 3124567 is now 0.92",
		MessageRefID: "999999123", Operation: "replaceResult"}
	if *r != want {
		t.Errorf("got %+v", *r)
	}

	// Prefixed namespace, readResult with a score.
	prefixed := `<ims:imsx_POXEnvelopeResponse xmlns:ims="` + Namespace + `"><ims:imsx_POXHeader><ims:imsx_POXResponseHeaderInfo>
<ims:imsx_statusInfo><ims:imsx_codeMajor>success</ims:imsx_codeMajor><ims:imsx_description>Result read</ims:imsx_description></ims:imsx_statusInfo>
</ims:imsx_POXResponseHeaderInfo></ims:imsx_POXHeader><ims:imsx_POXBody><ims:readResultResponse><ims:result><ims:resultScore>
<ims:language>en</ims:language><ims:textString>0.5</ims:textString></ims:resultScore></ims:result></ims:readResultResponse></ims:imsx_POXBody></ims:imsx_POXEnvelopeResponse>`
	r, err = ParseResponse([]byte(prefixed))
	if err != nil || !r.HasScore || r.Score != "0.5" || r.Description != "Result read" {
		t.Errorf("prefixed: %+v %v", r, err)
	}

	// No namespace at all, empty textString = no grade, Moodle-style failure.
	bare := `<imsx_POXEnvelopeResponse><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo>
<imsx_codeMajor>failure</imsx_codeMajor><imsx_severity>error</imsx_severity><imsx_description>User is no longer in course &amp; gone</imsx_description>
</imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody><readResultResponse><result><resultScore>
<textString></textString></resultScore></result></readResultResponse></imsx_POXBody></imsx_POXEnvelopeResponse>`
	r, err = ParseResponse([]byte(bare))
	if err != nil || r.HasScore || r.CodeMajor != "failure" || r.Description != "User is no longer in course & gone" {
		t.Errorf("bare: %+v %v", r, err)
	}

	latin1 := append([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><imsx_POXEnvelopeResponse><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo><imsx_codeMajor>failure</imsx_codeMajor><imsx_description>Kurs geschlossen f`), 0xFC)
	latin1 = append(latin1, []byte(`r Sie</imsx_description></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader></imsx_POXEnvelopeResponse>`)...)
	r, err = ParseResponse(latin1)
	if err != nil || r.Description != "Kurs geschlossen für Sie" {
		t.Errorf("latin1: %+v %v", r, err)
	}
}

// billionLaughs is the classic entity-expansion bomb; it must be refused
// quickly and cheaply.
const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<imsx_POXEnvelopeResponse><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo>
<imsx_codeMajor>success</imsx_codeMajor><imsx_description>&lol9;</imsx_description>
</imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader></imsx_POXEnvelopeResponse>`

func TestParseResponseHostile(t *testing.T) {
	deep := strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000)
	cases := map[string]string{
		"billion laughs":       billionLaughs,
		"external entity":      `<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><imsx_POXEnvelopeResponse><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo><imsx_codeMajor>success</imsx_codeMajor><imsx_description>&x;</imsx_description></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader></imsx_POXEnvelopeResponse>`,
		"undeclared entity":    `<imsx_POXEnvelopeResponse><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo><imsx_codeMajor>success</imsx_codeMajor><imsx_description>&x;</imsx_description></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader></imsx_POXEnvelopeResponse>`,
		"empty":                "",
		"blank":                " \n\t",
		"html":                 "<html><body><h1>502 Bad Gateway</h1></body></html>",
		"json":                 `{"errors":[{"message":"nope"}]}`,
		"truncated":            canvasSuccess[:len(canvasSuccess)/2],
		"no codeMajor":         `<imsx_POXEnvelopeResponse/>`,
		"request not response": pyltiBody,
		"deep":                 "<imsx_POXEnvelopeResponse>" + deep + "</imsx_POXEnvelopeResponse>",
		"two roots":            canvasSuccess + canvasSuccess,
		"mismatched tags":      `<imsx_POXEnvelopeResponse><a></b></imsx_POXEnvelopeResponse>`,
		"unknown charset":      `<?xml version="1.0" encoding="EBCDIC"?><imsx_POXEnvelopeResponse/>`,
		"oversized":            canvasSuccess + "<!--" + strings.Repeat("x", MaxResponseBytes) + "-->",
		// Text split by 100,000 comments inside one element: linear, not a
		// copy of all before each piece (and no codeMajor, so refused).
		"comment-split text": `<imsx_POXEnvelopeResponse><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo><imsx_description>` +
			strings.Repeat("ab<!---->", 100000) + `</imsx_description></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader></imsx_POXEnvelopeResponse>`,
	}
	for name, body := range cases {
		start := time.Now()
		r, err := ParseResponse([]byte(body))
		if err == nil {
			t.Errorf("%s: accepted as %+v", name, r)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: took %s", name, d)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(canvasSuccess))
	f.Add([]byte(billionLaughs))
	f.Add([]byte(pyltiBody))
	f.Add([]byte(`<a:imsx_POXEnvelopeResponse xmlns:a="x"><a:imsx_statusInfo><a:imsx_codeMajor>failure</a:imsx_codeMajor></a:imsx_statusInfo></a:imsx_POXEnvelopeResponse>`))
	f.Add([]byte(`<?xml version="1.0" encoding="latin1"?><imsx_POXEnvelopeResponse>` + "\xfc" + `</imsx_POXEnvelopeResponse>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseResponse(body)
		if err == nil && (r == nil || r.CodeMajor == "") {
			t.Fatalf("accepted without codeMajor: %+v", r)
		}
		// Whatever the body, classification must not panic and must decide.
		if o := classify(200, "200 OK", body, false); o.Status < Sent || o.Status > Retry {
			t.Fatalf("undecided status %v", o.Status)
		}
	})
}

// BenchmarkParseResponse: one LMS answer, read as every send reads it.
func BenchmarkParseResponse(b *testing.B) {
	body := []byte(canvasSuccess)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResponse(body); err != nil {
			b.Fatal(err)
		}
	}
}
