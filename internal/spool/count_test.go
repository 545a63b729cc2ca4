package spool

import (
	"os"
	"path/filepath"
	"testing"
)

// Count counts finished launches and claims as waiting, failed/ as failed
// (not its dot files, as Inspect), and neither the hook's temporary files
// nor anything else.
func TestCount(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	if b, err := Count(dir); err != nil || b != (Files{}) {
		t.Fatalf("missing spool: %+v %v", b, err)
	}
	os.MkdirAll(filepath.Join(dir, FailedDir), 0o700)
	for _, n := range []string{"20260101T000000Z-aa.json", "20260101T000001Z-bb.json", ".tmp-cc.part",
		"notes.txt", failedName("x.json"), failedName("y.json"), failedName("z.bad"), failedName(".moving")} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A claim, as an ingester makes it.
	if _, ok, err := take(dir, "20260101T000001Z-bb.json"); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	os.WriteFile(filepath.Join(dir, "20260101T000002Z-dd.json"), []byte("{}"), 0o600)
	b, err := Count(dir)
	if err != nil || b != (Files{Waiting: 3, Failed: 3}) {
		t.Errorf("Count: %+v %v, want 3 waiting (one claimed), 3 failed", b, err)
	}
}

func failedName(n string) string { return filepath.Join(FailedDir, n) }
