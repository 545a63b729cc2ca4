package lti11

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Namespace is the XML namespace of LTI 1.1 Basic Outcomes POX messages.
const Namespace = "http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"

// MaxResponseBytes caps what ParseResponse accepts. Real POX responses are
// well under a kilobyte; the cap bounds the memory a hostile LMS can cost us.
const MaxResponseBytes = 1 << 20

// Op names a Basic Outcomes operation.
type Op string

// The three operations of LTI 1.1 Basic Outcomes.
const (
	ReplaceResult Op = "replaceResult"
	ReadResult    Op = "readResult"
	DeleteResult  Op = "deleteResult"
)

// ResultRequest is one outcome operation for one sourcedId.
type ResultRequest struct {
	Op        Op
	SourcedID string
	MessageID string
	// Score is the decimal text for replaceResult, e.g. "0.85", already
	// validated by the caller: it is sent as given so that the value the
	// LMS stores is exactly the one we recorded.
	Score string
	// Canvas extensions, to be set only when the launch advertised them
	// (ext_outcome_data_values_accepted, ext_outcome_submission_submitted_at_accepted).
	ResultDataText string
	ResultDataURL  string
	SubmittedAt    *time.Time
}

// validXMLText reports whether s can travel as XML 1.0 character data
// unchanged. encoding/xml would silently replace anything else with U+FFFD,
// and a sourcedId altered that way addresses nobody.
func validXMLText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
		case r < 0x20, r == 0xFFFE, r == 0xFFFF, r >= 0xD800 && r <= 0xDFFF:
			return false
		}
	}
	return true
}

func writeText(b *bytes.Buffer, s string) {
	// EscapeText also escapes quotes and \r, \n, \t as character references,
	// so the parser hands back the very bytes we had (a literal CR LF would be
	// normalised to LF). Its only error comes from the writer, and a
	// bytes.Buffer does not fail.
	_ = xml.EscapeText(b, []byte(s))
}

func writeElem(b *bytes.Buffer, name, text string) {
	if text == "" {
		b.WriteString("<" + name + "/>")
		return
	}
	b.WriteString("<" + name + ">")
	writeText(b, text)
	b.WriteString("</" + name + ">")
}

// BuildPOX renders the request envelope. The sourcedId is escaped as XML text
// but otherwise sent byte for byte: Moodle's is a JSON document whose quotes
// and hash must survive untouched.
func BuildPOX(r ResultRequest) ([]byte, error) {
	switch r.Op {
	case ReplaceResult, ReadResult, DeleteResult:
	default:
		return nil, fmt.Errorf("unknown outcome operation %q", r.Op)
	}
	if r.SourcedID == "" {
		return nil, errors.New("empty sourcedid")
	}
	if r.Op == ReplaceResult {
		if strings.TrimSpace(r.Score) == "" {
			return nil, errors.New("replaceresult needs a score")
		}
		if r.ResultDataText != "" && r.ResultDataURL != "" {
			// Canvas documents only one resultData child per request (it keeps
			// the text and drops the url); refuse rather than lose data quietly.
			return nil, errors.New("result data carries text or url, not both")
		}
	} else if r.Score != "" || r.ResultDataText != "" || r.ResultDataURL != "" || r.SubmittedAt != nil {
		return nil, fmt.Errorf("%s carries no score, result data or submission time", r.Op)
	}
	for name, s := range map[string]string{"sourcedid": r.SourcedID, "message id": r.MessageID, "score": r.Score, "result text": r.ResultDataText, "result url": r.ResultDataURL} {
		if !validXMLText(s) {
			return nil, fmt.Errorf("%s contains characters xml cannot carry", name)
		}
	}

	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<imsx_POXEnvelopeRequest xmlns="` + Namespace + `">`)
	b.WriteString(`<imsx_POXHeader><imsx_POXRequestHeaderInfo><imsx_version>V1.0</imsx_version>`)
	writeElem(&b, "imsx_messageIdentifier", r.MessageID)
	b.WriteString(`</imsx_POXRequestHeaderInfo></imsx_POXHeader><imsx_POXBody>`)
	b.WriteString("<" + string(r.Op) + "Request>")
	if r.SubmittedAt != nil {
		// Canvas places submissionDetails directly under replaceResultRequest.
		b.WriteString(`<submissionDetails>`)
		writeElem(&b, "submittedAt", r.SubmittedAt.UTC().Format(time.RFC3339))
		b.WriteString(`</submissionDetails>`)
	}
	b.WriteString(`<resultRecord><sourcedGUID>`)
	writeElem(&b, "sourcedId", r.SourcedID)
	b.WriteString(`</sourcedGUID>`)
	if r.Op == ReplaceResult {
		b.WriteString(`<result><resultScore><language>en</language>`)
		writeElem(&b, "textString", r.Score)
		b.WriteString(`</resultScore>`)
		switch {
		case r.ResultDataText != "":
			b.WriteString(`<resultData>`)
			writeElem(&b, "text", r.ResultDataText)
			b.WriteString(`</resultData>`)
		case r.ResultDataURL != "":
			b.WriteString(`<resultData>`)
			writeElem(&b, "url", r.ResultDataURL)
			b.WriteString(`</resultData>`)
		}
		b.WriteString(`</result>`)
	}
	b.WriteString(`</resultRecord>`)
	b.WriteString("</" + string(r.Op) + "Request>")
	b.WriteString(`</imsx_POXBody></imsx_POXEnvelopeRequest>`)
	return b.Bytes(), nil
}

// Response is the part of a POX response envelope we act on.
type Response struct {
	CodeMajor    string // success, processing, failure or unsupported (trimmed, as sent)
	Severity     string
	Description  string
	MessageRefID string
	Operation    string
	// Score is the readResult textString; HasScore is false when the LMS
	// sent none or an empty one, which means "no grade".
	Score    string
	HasScore bool
}

// maxDepth bounds element nesting; a POX response is six levels deep.
const maxDepth = 64

// ParseResponse reads a POX response envelope. It is meant for bodies from
// an LMS we do not control: it refuses bodies over MaxResponseBytes and any
// DOCTYPE (so no entity can be declared, let alone expanded), limits
// nesting, and matches elements by local name so that a prefixed, default
// or missing namespace all work.
//
// Every send reads one of these, and encoding/xml made that a tenth of a
// large batch's CPU, so a plain envelope (UTF-8, elements, attributes, the
// predefined and numeric references: what LMSes send) is read by scanPlain; anything else,
// and every error, goes through encoding/xml. scanPlain only ever answers
// for a body encoding/xml reads the same way (FuzzParseResponsePlain holds
// it to that), so the fast path cannot change a decision.
func ParseResponse(body []byte) (*Response, error) {
	if len(body) > MaxResponseBytes {
		return nil, fmt.Errorf("response body over %d bytes", MaxResponseBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty response body")
	}
	if r, ok := scanPlain(body); ok {
		return r, nil
	}
	return parseXML(body)
}

// parseXML is ParseResponse through encoding/xml.
func parseXML(body []byte) (*Response, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	d.CharsetReader = charsetReader
	var c poxCollector
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse pox response: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			// Go never expands custom entities, but a DOCTYPE has no place in
			// POX and refusing it outright leaves nothing to reason about.
			return nil, errors.New("pox response has a doctype")
		case xml.StartElement:
			if err := c.start(t.Name.Local); err != nil {
				return nil, err
			}
		case xml.CharData:
			c.chars(string(t))
		case xml.EndElement:
			if err := c.end(); err != nil {
				return nil, err
			}
		}
	}
	return c.finish()
}

// poxCollector turns the element events of a response into a Response,
// the same for both readers.
type poxCollector struct {
	stack    []string
	text     string          // character data since the last tag: the first piece,
	more     strings.Builder // and all of it once a second piece came (encoding/xml splits text at comments)
	resp     Response
	seen     map[string]bool
	sawRoot  bool
	rootDone bool
}

func (c *poxCollector) start(local string) error {
	if c.rootDone {
		return errors.New("pox response has content after the root element")
	}
	if len(c.stack) == 0 {
		if local != "imsx_POXEnvelopeResponse" {
			return fmt.Errorf("not a pox response: root element %q", truncate(local, 40))
		}
		c.sawRoot = true
	}
	if len(c.stack) >= maxDepth {
		return errors.New("pox response nested too deeply")
	}
	c.stack = append(c.stack, local)
	c.resetText()
	return nil
}

// chars adds character data. A Builder once there are two pieces: text
// split a hundred thousand times by comments must not cost a copy of
// everything before each piece.
func (c *poxCollector) chars(s string) {
	if len(c.stack) == 0 {
		return
	}
	if c.more.Len() == 0 && c.text == "" {
		c.text = s
		return
	}
	if c.more.Len() == 0 {
		c.more.WriteString(c.text)
	}
	c.more.WriteString(s)
}

func (c *poxCollector) value() string {
	if c.more.Len() > 0 {
		return c.more.String()
	}
	return c.text
}

func (c *poxCollector) resetText() {
	c.text = ""
	c.more.Reset()
}

func (c *poxCollector) end() error {
	if len(c.stack) == 0 {
		return errors.New("unbalanced pox response")
	}
	field := statusField(c.stack)
	if field != "" && !c.seen[field] {
		if c.seen == nil {
			c.seen = make(map[string]bool, 8)
		}
		c.seen[field] = true
		v := strings.TrimSpace(c.value())
		switch field {
		case "imsx_codeMajor":
			c.resp.CodeMajor = v
		case "imsx_severity":
			c.resp.Severity = v
		case "imsx_description":
			c.resp.Description = v
		case "imsx_messageRefIdentifier":
			c.resp.MessageRefID = v
		case "imsx_operationRefIdentifier":
			c.resp.Operation = v
		case "score":
			c.resp.Score, c.resp.HasScore = v, v != ""
		}
	}
	c.stack = c.stack[:len(c.stack)-1]
	c.resetText()
	if len(c.stack) == 0 {
		c.rootDone = true
	}
	return nil
}

func (c *poxCollector) finish() (*Response, error) {
	if !c.sawRoot {
		return nil, errors.New("not a pox response: no root element")
	}
	if len(c.stack) != 0 {
		return nil, errors.New("truncated pox response")
	}
	if c.resp.CodeMajor == "" {
		return nil, errors.New("pox response lacks imsx_codeMajor")
	}
	r := c.resp
	return &r, nil
}

// statusField names the response field an element holds, judged by the
// element and its ancestors' local names, or "".
func statusField(stack []string) string {
	n := len(stack)
	if n >= 2 && stack[n-2] == "imsx_statusInfo" {
		switch stack[n-1] {
		case "imsx_codeMajor", "imsx_severity", "imsx_description", "imsx_messageRefIdentifier", "imsx_operationRefIdentifier":
			return stack[n-1]
		}
	}
	if n >= 4 && stack[n-4] == "readResultResponse" && stack[n-3] == "result" && stack[n-2] == "resultScore" && stack[n-1] == "textString" {
		return "score"
	}
	return ""
}

// charsetReader lets ParseResponse read the encodings an LMS may plausibly
// declare besides UTF-8 without pulling in x/text.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "latin1", "latin-1", "iso8859-1":
		return &latin1Reader{r: in}, nil
	}
	return nil, fmt.Errorf("unsupported charset %q", truncate(label, 40))
}

// latin1Reader converts ISO-8859-1 bytes to UTF-8.
type latin1Reader struct {
	r   io.Reader
	buf []byte
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	if len(p) < 2 {
		// One latin1 byte may need two UTF-8 bytes.
		return 0, io.ErrShortBuffer
	}
	if cap(l.buf) < len(p)/2 {
		l.buf = make([]byte, len(p)/2)
	}
	n, err := l.r.Read(l.buf[:len(p)/2])
	out := 0
	for _, c := range l.buf[:n] {
		out += utf8.EncodeRune(p[out:], rune(c))
	}
	return out, err
}
