// Package termsafe keeps text that came from an LMS or a launch (course
// and assignment titles, LMS messages, user names, paths) from steering the
// terminal or the shape of ltigrade's output: terminal escapes, control
// characters, bidi overrides and invalid UTF-8 are shown as visible escapes
// instead of acting, and a field cannot add lines of its own.
package termsafe

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// dangerous reports whether r would act on a terminal or reorder what is
// shown instead of being shown: C0/C1 controls, DEL, the Unicode line and
// paragraph separators, and the bidi embedding, override, isolate and mark
// characters (the "Trojan Source" set).
func dangerous(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u2028' || r == '\u2029':
		return true
	case r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069':
		return true
	case r == '\u200E' || r == '\u200F' || r == '\u061C':
		return true
	}
	return false
}

func escape(b *strings.Builder, r rune) {
	if r < 0x100 {
		fmt.Fprintf(b, `\x%02x`, r)
	} else {
		fmt.Fprintf(b, `\u%04x`, r)
	}
}

// Field makes s safe as one field of a line: tabs, newlines and carriage
// returns become spaces (a field cannot start a new line or TSV column),
// every other dangerous character and each invalid byte a visible escape.
func Field(s string) string {
	if clean(s, false) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case dangerous(r):
			escape(&b, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Lines is Field for text of several lines: newlines stay, each line is
// made safe.
func Lines(s string) string {
	if clean(s, true) {
		return s
	}
	parts := strings.Split(s, "\n")
	for i, p := range parts {
		parts[i] = Field(p)
	}
	return strings.Join(parts, "\n")
}

// clean reports whether s needs no change; keepNewlines allows '\n'.
func clean(s string, keepNewlines bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && !(keepNewlines && c == '\n') || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || dangerous(r) {
			return false
		}
		i += size
	}
	return true
}

// Writer returns a writer that passes text through with newlines, tabs
// and carriage returns (ltigrade's own layout and progress bar) but shows
// every other dangerous character as an escape: the last line of defence
// for whatever a command prints. JSON output passes unchanged in meaning:
// encoding/json already escapes controls, and a raw bidi character inside
// a JSON string becomes the equivalent \uXXXX escape.
func Writer(w io.Writer) io.Writer { return &writer{w: w} }

type writer struct {
	w       io.Writer
	pending []byte // the start of a rune split across writes
}

func (sw *writer) Write(p []byte) (int, error) {
	n := len(p)
	buf := p
	if len(sw.pending) > 0 {
		buf = append(append([]byte(nil), sw.pending...), p...)
		sw.pending = nil
	}
	// Hold back an incomplete rune at the end for the next write.
	if cut := incompleteTail(buf); cut > 0 {
		sw.pending = append(sw.pending, buf[len(buf)-cut:]...)
		buf = buf[:len(buf)-cut]
	}
	s := string(buf)
	if !needsEscape(s) {
		_, err := sw.w.Write(buf)
		return n, err
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || r == '\t' || r == '\r':
			b.WriteRune(r)
		case dangerous(r):
			// JSON reads \u as the same character; a terminal shows it.
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	_, err := io.WriteString(sw.w, b.String())
	return n, err
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\n' && c != '\t' && c != '\r' || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || dangerous(r) {
			return true
		}
		i += size
	}
	return false
}

// incompleteTail is how many bytes at the end of b begin a rune that the
// next write may complete (0 if none).
func incompleteTail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < utf8.RuneSelf {
			return 0
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-k:]) {
				return k
			}
			return 0
		}
	}
	return 0
}

// Flush is not needed: a rune left pending at exit was invalid anyway.
