package lti11

import (
	"strings"
	"testing"
)

// The responses LMSes send must take the fast path, and read there exactly
// as encoding/xml reads them; a scanPlain that bailed on everything would
// be correct but slow, and this test is what notices.
func TestScanPlainReadsLMSResponses(t *testing.T) {
	moodle := "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" +
		`<imsx_POXEnvelopeResponse xmlns="http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"><imsx_POXHeader>` +
		`<imsx_POXResponseHeaderInfo><imsx_version>V1.0</imsx_version><imsx_messageIdentifier>1313355158</imsx_messageIdentifier>` +
		`<imsx_statusInfo><imsx_codeMajor>failure</imsx_codeMajor><imsx_severity>status</imsx_severity>` +
		`<imsx_description>Message signature not valid</imsx_description><imsx_messageRefIdentifier>ref-1</imsx_messageRefIdentifier>` +
		`<imsx_operationRefIdentifier>replaceResultRequest</imsx_operationRefIdentifier></imsx_statusInfo>` +
		`</imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody><replaceResultResponse/></imsx_POXBody></imsx_POXEnvelopeResponse>` + "\n"
	prefixed := `<?xml version='1.0' encoding='utf-8' standalone='yes'?><ims:imsx_POXEnvelopeResponse xmlns:ims="` + Namespace + `"><ims:imsx_POXHeader><ims:imsx_POXResponseHeaderInfo>
<ims:imsx_statusInfo ><ims:imsx_codeMajor>success</ims:imsx_codeMajor><ims:imsx_description>Result &lt;read&gt; &amp; &quot;kept&quot; &apos;x&apos; — ünïcode caf&#233; &#x263A;&#34;</ims:imsx_description></ims:imsx_statusInfo >
</ims:imsx_POXResponseHeaderInfo></ims:imsx_POXHeader><ims:imsx_POXBody><ims:readResultResponse><ims:result><ims:resultScore>
<ims:language>en</ims:language><ims:textString> 0.5 </ims:textString></ims:resultScore></ims:result></ims:readResultResponse></ims:imsx_POXBody></ims:imsx_POXEnvelopeResponse>`
	emptyScore := `<imsx_POXEnvelopeResponse><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo a = "1"	b='2'>
<imsx_codeMajor>success</imsx_codeMajor></imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody><readResultResponse><result><resultScore>
<textString/></resultScore></result></readResultResponse></imsx_POXBody></imsx_POXEnvelopeResponse>`
	for name, body := range map[string]string{"canvas": canvasSuccess, "moodle": moodle, "prefixed": prefixed, "empty score": emptyScore} {
		fast, ok := scanPlain([]byte(body))
		if !ok {
			t.Errorf("%s: not read by the fast path", name)
			continue
		}
		slow, err := parseXML([]byte(body))
		if err != nil || *fast != *slow {
			t.Errorf("%s: fast %+v, encoding/xml %+v %v", name, *fast, slow, err)
		}
	}
	r, _ := scanPlain([]byte(prefixed))
	if r == nil || r.Description != `Result <read> & "kept" 'x' — ünïcode café ☺"` || r.Score != "0.5" || !r.HasScore {
		t.Errorf("prefixed read as %+v", r)
	}
	if r, _ := scanPlain([]byte(emptyScore)); r == nil || r.HasScore || r.CodeMajor != "success" {
		t.Errorf("empty score read as %+v", r)
	}
}

// What the fast path does not know it leaves to encoding/xml, and
// ParseResponse still gets those right (or refuses them).
func TestScanPlainDefers(t *testing.T) {
	ok := func(body string) string {
		return `<imsx_POXEnvelopeResponse><imsx_POXHeader><imsx_POXResponseHeaderInfo><imsx_statusInfo>` +
			`<imsx_codeMajor>success</imsx_codeMajor><imsx_description>` + body + `</imsx_description>` +
			`</imsx_statusInfo></imsx_POXResponseHeaderInfo></imsx_POXHeader></imsx_POXEnvelopeResponse>`
	}
	cases := map[string]struct {
		body string
		desc string // "" = ParseResponse must refuse it
	}{
		"comment":       {ok("a<!-- note -->b"), "ab"},
		"cdata":         {ok("<![CDATA[<x>]]>"), "<x>"},
		"cr reference":  {ok("a&#13;b"), "a\rb"},
		"surrogate ref": {ok("&#xD800;"), "\uFFFD"},
		"X reference":   {ok("&#X41;"), ""},
		"cr lf":         {ok("a\r\nb"), "a\nb"},
		"latin1 decl":   {`<?xml version="1.0" encoding="ISO-8859-1"?>` + ok("f\xfcr"), "für"},
		"pi":            {`<?xml version="1.0"?><?php echo 1 ?>` + ok("x"), "x"},
		"bad entity":    {ok("&nbsp;"), ""},
		"doctype":       {`<!DOCTYPE x>` + ok("x"), ""},
		"mismatch":      {strings.Replace(ok("x"), "</imsx_description>", "</imsx_descriptio>", 1), ""},
		"prefix change": {`<a:imsx_POXEnvelopeResponse xmlns:a="u" xmlns:b="u"><a:imsx_statusInfo><a:imsx_codeMajor>success</a:imsx_codeMajor></a:imsx_statusInfo></b:imsx_POXEnvelopeResponse>`, ""},
		"two colons":    {`<a:b:imsx_POXEnvelopeResponse/>`, ""},
		"bad utf8":      {ok("\xff"), ""},
		"nul":           {ok("\x00"), ""},
		"version 1.1":   {`<?xml version="1.1"?>` + ok("x"), ""},
		"text outside":  {"junk" + ok("x"), "x"},
		"after root":    {ok("x") + "<more/>", ""},
	}
	for name, c := range cases {
		if r, ok := scanPlain([]byte(c.body)); ok {
			t.Errorf("%s: the fast path answered %+v", name, *r)
		}
		r, err := ParseResponse([]byte(c.body))
		switch {
		case c.desc == "" && err == nil:
			t.Errorf("%s: accepted as %+v", name, *r)
		case c.desc != "" && (err != nil || r.Description != c.desc):
			t.Errorf("%s: got %+v %v, want description %q", name, r, err, c.desc)
		}
	}
}

// FuzzParseResponsePlain holds the fast path to encoding/xml: whatever it
// accepts, encoding/xml must read as the same Response.
func FuzzParseResponsePlain(f *testing.F) {
	f.Add([]byte(canvasSuccess))
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><a:imsx_POXEnvelopeResponse xmlns:a="x"><a:imsx_statusInfo k='v'><a:imsx_codeMajor>failure &amp; more</a:imsx_codeMajor><a:imsx_description/></a:imsx_statusInfo></a:imsx_POXEnvelopeResponse>`))
	f.Add([]byte(`<imsx_POXEnvelopeResponse><x><imsx_statusInfo><imsx_codeMajor>a<b>c</b>d</imsx_codeMajor></imsx_statusInfo></x><readResultResponse><result><resultScore><textString>1</textString></resultScore></result></readResultResponse></imsx_POXEnvelopeResponse>`))
	f.Add([]byte(" \n<imsx_POXEnvelopeResponse ><imsx_statusInfo><imsx_codeMajor >x</imsx_codeMajor ></imsx_statusInfo></imsx_POXEnvelopeResponse>\n "))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := scanPlain(body)
		if !ok {
			return
		}
		slow, err := parseXML(body)
		if err != nil {
			t.Fatalf("fast path accepted what encoding/xml refuses (%v): %+v", err, *fast)
		}
		if *fast != *slow {
			t.Fatalf("fast %+v, encoding/xml %+v", *fast, *slow)
		}
	})
}
