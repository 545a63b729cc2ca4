package spool

import (
	"io/fs"
	"syscall"
	"time"
)

// changeTime is a file's ctime, which a rename sets: when a claim was taken.
func changeTime(fi fs.FileInfo) time.Time {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(sys.Ctim.Sec, sys.Ctim.Nsec)
	}
	return fi.ModTime()
}
