package grade

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSpoolPendingEmpty is what issue 8 §2 adds to every resolve when
// the hub's spool is empty: one directory listing (the figure of its
// closing note; `go test -run=NONE -bench=SpoolPending ./internal/grade/`).
func BenchmarkSpoolPendingEmpty(b *testing.B) {
	dir := b.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "failed"), 0o700); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if pending, err := SpoolPending(dir); err != nil || pending {
			b.Fatal(pending, err)
		}
	}
}

// TestSpoolPending: what counts as work for the catch-up.
func TestSpoolPending(t *testing.T) {
	dir := t.TempDir()
	if p, err := SpoolPending(dir); p || err != nil {
		t.Fatalf("empty: %v %v", p, err)
	}
	for _, name := range []string{"failed", ".tmp-x.json.part"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := SpoolPending(dir); p || err != nil {
		t.Fatalf("only failed/ and a half-written file: %v %v", p, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".ingesting-123-x.json"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := SpoolPending(dir); !p || err != nil {
		t.Fatalf("a claim (maybe of a dead ingester): %v %v", p, err)
	}
	if _, err := SpoolPending(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Fatalf("missing spool: %v", err)
	}
}
