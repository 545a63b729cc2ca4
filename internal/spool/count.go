package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files is how many files wait in a spool directory, for monitoring (Inspect
// tells more, for doctor).
type Files struct {
	// Waiting: launches the hook spooled that no one has recorded yet,
	// claimed ones included (an ingester is on them, or died on them).
	Waiting int
	// Failed: files moved to failed/, kept for an admin to read.
	Failed int
}

// Count counts the spool's files without reading or claiming any. A
// missing directory (nothing ever spooled) counts zero.
func Count(dir string) (Files, error) {
	var b Files
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".json") {
			continue
		}
		// Dot files are the hook's temporary files and claims; a claim
		// is a launch still to be recorded.
		if _, _, claimed := parseClaim(n); claimed || !strings.HasPrefix(n, ".") {
			b.Waiting++
		}
	}
	failed, err := os.ReadDir(filepath.Join(dir, FailedDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return b, fmt.Errorf("spool: %w", err)
	}
	for _, e := range failed {
		// As Inspect counts them, so doctor and the metrics agree.
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			b.Failed++
		}
	}
	return b, nil
}
