package lti11

import (
	"strings"
	"unicode/utf8"
)

// scanPlain reads a response that uses only plain XML: UTF-8 text, an
// optional XML declaration saying version 1.0 and UTF-8, elements whose
// names are ASCII with at most one prefix, quoted attributes without
// references, and in text the five named entities and numeric character
// references. That is what Canvas, Moodle, Blackboard, Brightspace and Open
// edX send, and reading it this way costs a few microseconds instead of
// some thirty.
//
// It answers ok only for a body that is a valid POX response; on anything
// else (a comment, CDATA, a DOCTYPE, a processing instruction, a carriage
// return, another encoding, a malformed or wrong document) it says !ok and
// the caller reads the body with encoding/xml, which then decides. So it
// never has to reproduce an error, only success, and the fuzz test checks
// each of its successes against encoding/xml.
func scanPlain(body []byte) (*Response, bool) {
	var c poxCollector
	ok := ScanPlainXML(body, PlainEvents{
		Start: func(local string) bool { return c.start(local) == nil },
		Text:  c.chars,
		End:   func() bool { return c.end() == nil },
	})
	if !ok {
		return nil, false
	}
	r, err := c.finish()
	if err != nil {
		return nil, false
	}
	return r, true
}

// PlainEvents receives what ScanPlainXML reads. Start gets an element's
// local name (the one after its prefix: both readers match by local name);
// Text gets the decoded character data between two tags; End closes the
// innermost element. Start or End returning false stops the scan
// (ScanPlainXML then returns false).
type PlainEvents struct {
	Start func(local string) bool
	Text  func(s string)
	End   func() bool
}

// ScanPlainXML reads body as the plain XML described at scanPlain,
// reporting its elements and text, and returns true only if all of body
// is plain and well formed. It returns false, having possibly reported a
// part of body, as soon as it meets anything else; the caller then reads
// the body with encoding/xml instead. The lmssim simulator reads requests
// with it too.
func ScanPlainXML(body []byte, ev PlainEvents) bool {
	if !plainChars(body) {
		return false
	}
	s := string(body)
	i := 0
	if strings.HasPrefix(s, "<?xml") {
		end := strings.Index(s, "?>")
		if end < 0 || !plainDecl(s[len("<?xml"):end]) {
			return false
		}
		i = end + 2
	}
	var open []string // the open elements' names as written
	done := false     // the root element has closed
	for i < len(s) {
		if s[i] != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				j = len(s) - i
			}
			text, ok := plainText(s[i : i+j])
			if !ok {
				return false
			}
			if len(open) == 0 {
				if strings.TrimLeft(text, " \t\n") != "" {
					return false // text outside the root: encoding/xml judges it
				}
			} else {
				ev.Text(text)
			}
			i += j
			continue
		}
		if i+1 >= len(s) {
			return false
		}
		if s[i+1] == '/' {
			name, n := plainName(s[i+2:])
			if n == 0 || len(open) == 0 {
				return false
			}
			k := skipSpace(s, i+2+n)
			if k >= len(s) || s[k] != '>' || name != open[len(open)-1] {
				return false
			}
			if !ev.End() {
				return false
			}
			open = open[:len(open)-1]
			done = len(open) == 0
			i = k + 1
			continue
		}
		if done {
			return false // a second root: encoding/xml judges it
		}
		name, n := plainName(s[i+1:])
		if n == 0 {
			return false // <!, <?, or not a name
		}
		if len(open) >= maxPlainDepth {
			return false // encoding/xml has its own limits
		}
		k, selfClosing, ok := plainAttrs(s, i+1+n)
		if !ok || !ev.Start(localName(name)) {
			return false
		}
		open = append(open, name)
		if selfClosing {
			if !ev.End() {
				return false
			}
			open = open[:len(open)-1]
			done = len(open) == 0
		}
		i = k
	}
	return len(open) == 0 && done
}

// maxPlainDepth bounds the nesting ScanPlainXML reads; POX is six or
// seven levels deep, and a handler may look at the whole path per element.
const maxPlainDepth = 32

// plainAttrs reads a start tag's attributes from s[k:] up to its end and
// returns the index after the tag and whether it was self-closing.
func plainAttrs(s string, k int) (int, bool, bool) {
	for {
		sp := skipSpace(s, k)
		if sp >= len(s) {
			return 0, false, false
		}
		if s[sp] == '>' {
			return sp + 1, false, true
		}
		if s[sp] == '/' {
			if sp+1 >= len(s) || s[sp+1] != '>' {
				return 0, false, false
			}
			return sp + 2, true, true
		}
		if sp == k {
			return 0, false, false // an attribute must follow white space
		}
		_, an := plainName(s[sp:])
		if an == 0 {
			return 0, false, false
		}
		q := skipSpace(s, sp+an)
		if q >= len(s) || s[q] != '=' {
			return 0, false, false
		}
		q = skipSpace(s, q+1)
		if q >= len(s) || (s[q] != '"' && s[q] != '\'') {
			return 0, false, false
		}
		end := strings.IndexByte(s[q+1:], s[q])
		if end < 0 || strings.ContainsAny(s[q+1:q+1+end], "<&") {
			return 0, false, false
		}
		k = q + 1 + end + 1
	}
}

// plainChars: valid UTF-8 made only of characters XML 1.0 allows, with no
// carriage return (which encoding/xml would normalise).
func plainChars(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError || r == 0xFFFE || r == 0xFFFF {
			return false // U+FFFD itself is allowed, but not worth telling apart
		}
		i += n
	}
	return true
}

// plainDecl accepts the inside of `<?xml ... ?>` when it is exactly
// version="1.0", optionally encoding="UTF-8" (any case) and standalone.
func plainDecl(s string) bool {
	want := []string{"version", "encoding", "standalone"}
	seen := 0
	for {
		t := strings.TrimLeft(s, " \t\n")
		if t == "" {
			return seen > 0
		}
		if len(t) == len(s) {
			return false // attributes are separated by white space
		}
		name, n := plainName(t)
		if n == 0 {
			return false
		}
		idx := -1
		for j := seen; j < len(want); j++ {
			if want[j] == name {
				idx = j
				break
			}
		}
		if idx < 0 || (seen == 0 && idx != 0) {
			return false
		}
		t = t[n:]
		if len(t) < 3 || t[0] != '=' || (t[1] != '"' && t[1] != '\'') {
			return false
		}
		end := strings.IndexByte(t[2:], t[1])
		if end < 0 {
			return false
		}
		v := t[2 : 2+end]
		switch name {
		case "version":
			if v != "1.0" {
				return false
			}
		case "encoding":
			if !strings.EqualFold(v, "utf-8") {
				return false
			}
		case "standalone":
			if v != "yes" && v != "no" {
				return false
			}
		}
		seen = idx + 1
		s = t[2+end+1:]
	}
}

// plainName reads an ASCII XML name at the start of s with at most one
// colon, not at either end, and returns it and its length (0: none).
func plainName(s string) (string, int) {
	n := 0
	colons := 0
	for n < len(s) {
		c := s[n]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', c == '_':
		case '0' <= c && c <= '9', c == '.', c == '-':
			if n == 0 {
				return "", 0
			}
		case c == ':':
			colons++
		case c >= utf8.RuneSelf:
			return "", 0 // a non-ASCII name: encoding/xml's rules
		default:
			goto done
		}
		n++
	}
done:
	if n == 0 || colons > 1 || s[0] == ':' || s[n-1] == ':' {
		return "", 0
	}
	if n < len(s) && s[n] >= utf8.RuneSelf {
		return "", 0
	}
	return s[:n], n
}

// localName is the part of a name after its prefix.
func localName(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// plainText decodes character data that uses only the five named entities
// and numeric references.
func plainText(s string) (string, bool) {
	if strings.IndexByte(s, '&') < 0 {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			return b.String(), true
		}
		b.WriteString(s[:i])
		s = s[i:]
		var r byte
		switch {
		case strings.HasPrefix(s, "&lt;"):
			r, s = '<', s[4:]
		case strings.HasPrefix(s, "&gt;"):
			r, s = '>', s[4:]
		case strings.HasPrefix(s, "&amp;"):
			r, s = '&', s[5:]
		case strings.HasPrefix(s, "&quot;"):
			r, s = '"', s[6:]
		case strings.HasPrefix(s, "&apos;"):
			r, s = '\'', s[6:]
		case strings.HasPrefix(s, "&#"):
			c, n := charRef(s)
			if n == 0 {
				return "", false
			}
			b.WriteRune(c)
			s = s[n:]
			continue
		default:
			return "", false
		}
		b.WriteByte(r)
	}
}

// charRef decodes a numeric character reference (&#34; &#x22;) at the
// start of s, as encoding/xml does (a lower-case x only), returning the
// character and the reference's length, or 0 for one to leave to
// encoding/xml: a carriage return, a surrogate, a character XML forbids,
// more than six digits.
func charRef(s string) (rune, int) {
	i, base := 2, 10
	if i < len(s) && s[i] == 'x' {
		i, base = 3, 16
	}
	var v rune
	start := i
	for ; i < len(s) && i-start <= 6; i++ {
		c := s[i]
		var d rune
		switch {
		case '0' <= c && c <= '9':
			d = rune(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			d = rune(c-'A') + 10
		case c == ';':
			if i == start {
				return 0, 0
			}
			if v == '\t' || v == '\n' || (v >= 0x20 && v <= 0xD7FF) || (v >= 0xE000 && v <= 0xFFFD) || (v >= 0x10000 && v <= 0x10FFFF) {
				return v, i + 1
			}
			return 0, 0
		default:
			return 0, 0
		}
		v = v*rune(base) + d
	}
	return 0, 0
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
		i++
	}
	return i
}
