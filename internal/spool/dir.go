package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// UnsafeDirError is a spool directory that others can write: anyone on the
// machine could then add, rename or remove the hook's launches, so nothing
// in it is ingested until it is fixed.
type UnsafeDirError struct {
	Dir  string
	Mode fs.FileMode // permission bits
}

func (e *UnsafeDirError) Error() string {
	return fmt.Sprintf("spool: directory %s is writable by others (mode %04o), who could plant or remove launches; nothing in it was ingested",
		e.Dir, e.Mode)
}

// Hint is the fix the CLI suggests.
func (e *UnsafeDirError) Hint() string { return "chmod o-w " + e.Dir }

// CheckDir refuses a spool directory writable by others. Group write is
// allowed: a grader group sharing /var/lib/ltigrade is a documented setup,
// and files of other users are never ingested. A missing directory is fine
// (nothing was ever spooled).
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("spool: %w", err)
	case fi.IsDir() && fi.Mode().Perm()&0o002 != 0:
		return &UnsafeDirError{Dir: dir, Mode: fi.Mode().Perm()}
	}
	return nil
}
