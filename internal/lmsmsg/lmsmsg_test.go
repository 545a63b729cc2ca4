package lmsmsg

import "testing"

// Sanitize's shortcut for plain text must agree with the full rewrite.
func FuzzSanitizeShortcut(f *testing.F) {
	for _, s := range []string{"accepted (HTTP 200): Score for 3124567 is now 0.92", " a", "a ", "a  b", "a\tb", "é", "a\u202eb", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Sanitize(s), sanitize(s); got != want {
			t.Fatalf("Sanitize(%q) = %q, the full rewrite gives %q", s, got, want)
		}
	})
}

func TestSanitizeShortcutTaken(t *testing.T) {
	if !plainASCII("accepted (HTTP 200): Score for 3124567 is now 0.92") {
		t.Error("an ordinary message does not take the shortcut")
	}
	for _, s := range []string{" lead", "trail ", "two  spaces", "tab\there", "nul\x00", "ü"} {
		if plainASCII(s) {
			t.Errorf("%q takes the shortcut", s)
		}
	}
}
