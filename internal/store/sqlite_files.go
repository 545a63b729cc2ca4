package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// refuseURL keeps a database URL from being opened as a file name: SQLite
// would create ./postgres:/user:password@host/db. The value is not quoted,
// as it may hold a password.
func refuseURL(path string) error {
	if i := strings.Index(path, "://"); i > 0 {
		return fmt.Errorf("store: the database is a %s URL, not a SQLite file path", path[:i])
	}
	return nil
}

// fixOthersAccess drops the "other" permission bits of the database and its
// -wal and -shm files: they hold every student's launch data. SQLite gives
// new -wal and -shm files the database's mode, so fixing it before the open
// covers the files to come. Group bits are left: a group of graders sharing
// the store is a documented setup. It returns a warning, or "".
func fixOthersAccess(path string) string {
	var changed, failed []string
	var dbMode, dbFixed fs.FileMode
	for i, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o007 == 0 {
			continue
		}
		mode := fi.Mode().Perm()
		if i == 0 {
			dbMode, dbFixed = mode, mode&^0o007
		}
		if err := os.Chmod(f, mode&^0o007); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			failed = append(failed, fmt.Sprintf("%s (mode %04o: %v)", f, mode, err))
			continue
		}
		changed = append(changed, f)
	}
	if len(failed) > 0 {
		return fmt.Sprintf("database files open to others, which ltigrade cannot change: %s; run chmod o-rwx on them as their owner",
			strings.Join(failed, ", "))
	}
	switch {
	case len(changed) == 0:
		return ""
	case changed[0] == path:
		w := fmt.Sprintf("database %s was %s by others (mode %04o); changed to %04o", path, accessOf(dbMode), dbMode, dbFixed)
		if len(changed) > 1 {
			w += ", and its -wal and -shm files likewise"
		}
		return w
	}
	return fmt.Sprintf("database files %s were open to others; removed their access", strings.Join(changed, " and "))
}

func accessOf(mode fs.FileMode) string {
	switch {
	case mode&0o004 != 0:
		return "readable"
	case mode&0o002 != 0:
		return "writable"
	}
	return "accessible"
}
