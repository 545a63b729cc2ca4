// Package spool ingests the launches the JupyterHub hook could not record
// (ltigrade failed or was too slow) and left as files in the spool
// directory, one JSON launch per file, named <utc-time>-<random>.json and
// written atomically by the hook.
//
// Several ingesters may run at once (cron's `ltigrade sync`, an admin's
// `ltigrade record --spool`): each file is claimed by renaming it to a name
// only its claimer knows, so no launch is recorded twice by two live
// processes. A claim names its process (package owner: pid space, pid and
// start time), and claims of processes that died, or whose pid now belongs
// to another process, are taken over; so are claims that cannot be checked
// from here (another host, boot or container) once they are stale. A launch
// is deleted only after it is stored; one that is stored but whose claimer
// dies before deleting it is recorded again, which adds a launch to history
// but cannot change a session's current launch (the newest launch wins).
package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/owner"
)

// FailedDir is the subdirectory invalid and refused files are moved to;
// they are kept there for an admin to read, never deleted.
const FailedDir = "failed"

const claimPrefix = ".ingesting-"

// staleClaim is how old a claim that cannot be checked gets before it is
// taken over: far beyond one batch of an ingestion (a parse and a
// transaction), so the claimer is surely gone.
const staleClaim = time.Hour

var (
	now     = time.Now // tests move it
	geteuid = os.Geteuid
)

// Stats says what an ingestion did.
type Stats struct {
	Ingested int       `json:"ingested"`
	Failed   int       `json:"failed"`
	Failures []Failure `json:"failures,omitempty"`
	// Skipped counts files owned by another user, left for their owner:
	// the hook's user (root on TLJH) ingests its own spool. Root's files
	// that others may read are not skipped (see trusted).
	Skipped int `json:"skipped"`
}

// Failure is one file moved to failed/ and why.
type Failure struct {
	File  string `json:"file"` // its name, now under failed/
	Error string `json:"error"`
}

// Batch records spooled launches several at a time, so a long spool costs
// one transaction (one fsync) per batch instead of one per launch.
type Batch struct {
	// Size is the most files claimed before Commit; below 1 means 1.
	Size int
	// Add checks and stages one file's content. A *launch.InvalidError moves
	// the file to failed/; any other error puts the batch back and stops.
	Add func(data []byte) error
	// Commit stores what Add staged since the last Commit. Success deletes
	// the batch's files; an error puts them back and stops. Nil means Add
	// stores each launch itself.
	Commit func() error
}

// Ingest records each spooled launch with record, one at a time: a
// *launch.InvalidError moves the file to failed/, any other error (the
// database is not writable...) puts it back and stops with that error. A
// missing dir (nothing was ever spooled) or an empty one is not an error;
// one writable by others is refused whole (see CheckDir).
func Ingest(ctx context.Context, dir string, record func(data []byte) error) (Stats, error) {
	return IngestBatch(ctx, dir, Batch{Size: 1, Add: record})
}

// IngestBatch is Ingest in batches; see Batch.
func IngestBatch(ctx context.Context, dir string, b Batch) (Stats, error) {
	var st Stats
	if dir == "" {
		return st, nil
	}
	if err := CheckDir(dir); err != nil {
		return st, err
	}
	names, skipped, err := candidates(dir)
	if err != nil {
		return st, err
	}
	st.Skipped = skipped
	size := max(b.Size, 1)
	for len(names) > 0 {
		var batch []claim
		putBack := func(err error) (Stats, error) {
			for _, c := range batch {
				err = errors.Join(err, c.putBack())
			}
			return st, err
		}
		for len(names) > 0 && len(batch) < size {
			if err := ctx.Err(); err != nil {
				return putBack(err)
			}
			name := names[0]
			names = names[1:]
			c, ok, err := take(dir, name)
			if err != nil {
				return putBack(err)
			}
			if !ok {
				continue // another ingester has it
			}
			data, err := c.read()
			if err == nil {
				err = b.Add(data)
			}
			var refused *refusedError
			var invalid *launch.InvalidError
			switch {
			case err == nil:
				batch = append(batch, c)
			case errors.Is(err, errForeign):
				st.Skipped++
				if err := c.putBack(); err != nil {
					return putBack(err)
				}
			case errors.As(err, &refused), errors.As(err, &invalid):
				f, merr := c.fail()
				if merr != nil {
					return putBack(errors.Join(merr, c.putBack()))
				}
				st.Failed++
				st.Failures = append(st.Failures, Failure{File: f, Error: err.Error()})
			default:
				batch = append(batch, c)
				return putBack(err)
			}
		}
		if len(batch) == 0 {
			continue
		}
		if b.Commit != nil {
			if err := b.Commit(); err != nil {
				return putBack(err)
			}
		}
		for _, c := range batch {
			// Stored: a file that cannot be removed would be recorded
			// again, so say so, but the launch itself is safe.
			if err := os.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return st, fmt.Errorf("spool: recorded %s but cannot delete it: %w", c.orig, err)
			}
			st.Ingested++
		}
	}
	return st, nil
}

// candidates lists spooled files, oldest first (names start with the
// time), and claims left by dead processes; it counts files of other users,
// which it leaves alone.
func candidates(dir string) (names []string, skipped int, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		claimer, _, claimed := parseClaim(n)
		// Dot files are the hook's temporary files (.tmp-*.part) and live
		// claims; only finished launches end in .json.
		spooled := !strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".json") && !e.IsDir()
		switch {
		case !claimed && !spooled, claimed && claimerAlive(claimer, e):
		case foreign(e):
			skipped++
		default:
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(origName(a), origName(b)) })
	return names, skipped, nil
}

func origName(n string) string {
	if _, orig, ok := parseClaim(n); ok {
		return orig
	}
	return n
}

// parseClaim splits ".ingesting-<owner token>-<random>-<original name>";
// older binaries wrote a bare pid as the token.
func parseClaim(n string) (claimer owner.Process, orig string, ok bool) {
	rest, ok := strings.CutPrefix(n, claimPrefix)
	if !ok {
		return owner.Process{}, "", false
	}
	parts := strings.SplitN(rest, "-", 3)
	if len(parts) != 3 || !strings.HasSuffix(parts[2], ".json") || strings.HasPrefix(parts[2], ".") {
		return owner.Process{}, "", false
	}
	claimer, ok = owner.ParseToken(parts[0])
	if !ok {
		return owner.Process{}, "", false
	}
	return claimer, parts[2], true
}

// claimerAlive says whether the process that claimed e may still be
// ingesting it. This very process counts as alive: another ingestion in it
// may hold the claim. One that cannot be checked is alive until the claim
// (renamed at claiming, which sets its ctime) is stale.
func claimerAlive(claimer owner.Process, e fs.DirEntry) bool {
	switch claimer.State() {
	case owner.Gone:
		return false
	case owner.Running:
		return true
	}
	fi, err := e.Info()
	if err != nil {
		return true // gone already: nothing to take over
	}
	return now().Sub(changeTime(fi)) < staleClaim
}

// claim is a spooled file this process has renamed to its own name.
type claim struct {
	dir, orig, path string
}

// take claims dir/name by renaming it; ok is false when another process
// renamed it first. Rename is atomic, so exactly one claimer wins.
func take(dir, name string) (claim, bool, error) {
	orig := origName(name)
	c := claim{dir: dir, orig: orig,
		path: filepath.Join(dir, fmt.Sprintf("%s%s-%08x-%s", claimPrefix, owner.Token(), rand.Uint32(), orig))}
	if err := os.Rename(filepath.Join(dir, name), c.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return claim{}, false, nil
		}
		return claim{}, false, fmt.Errorf("spool: claim %s: %w", name, err)
	}
	return c, true, nil
}

// foreign says whether a file belongs to another user. Such files are left
// for their owner's ingestion: ours would refuse them (see read). Root's
// files that group or others may read are not foreign (see trusted).
func foreign(e fs.DirEntry) bool {
	fi, err := e.Info()
	if err != nil {
		return true
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	if int(sys.Uid) == 0 && fi.Mode().Perm()&0o044 == 0 {
		return geteuid() != 0 // root's private file: only root can read it
	}
	return !trusted(int(sys.Uid))
}

// trusted says whether ingestion takes launches from files of uid: its
// own, and root's, which only root can have written. Root is the hub's
// user on TLJH: graders sharing the database through a group (see
// docs/jupyterhub.md) then record what the hub spooled into a spool folder
// open to that group, instead of waiting for root's cron.
func trusted(uid int) bool { return uid == geteuid() || uid == 0 }

// errForeign marks a file of another user: put back, not ingested.
var errForeign = errors.New("spool: owned by another user")

// refusedError is a file ingestion will not read: it goes to failed/.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

// read returns the claimed file's content if it is a regular file of ours
// (or root's), not writable by group or others, of at most launch.MaxSize bytes. The checks run
// on the opened file (O_NOFOLLOW: a symlink is refused, not followed), so
// nothing can be swapped in between check and read. Readable by others is
// allowed: the hook writes 0600, but an admin copying a launch in by hand
// may not, and the directory itself is private.
func (c claim) read() ([]byte, error) {
	f, err := os.OpenFile(c.path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &refusedError{"spool: symbolic link refused"}
	}
	if errors.Is(err, fs.ErrPermission) {
		return nil, errForeign // we would refuse it anyway; its owner may not
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sys, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, &refusedError{fmt.Sprintf("spool: not a regular file (%s)", fi.Mode().Type())}
	case sys != nil && !trusted(int(sys.Uid)):
		return nil, errForeign
	case fi.Mode().Perm()&0o022 != 0:
		return nil, &refusedError{fmt.Sprintf("spool: mode %04o lets group or others change it", fi.Mode().Perm())}
	case fi.Size() > launch.MaxSize:
		return nil, &refusedError{fmt.Sprintf("spool: larger than %d bytes", launch.MaxSize)}
	}
	data, err := io.ReadAll(io.LimitReader(f, launch.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if len(data) > launch.MaxSize {
		return nil, &refusedError{fmt.Sprintf("spool: larger than %d bytes", launch.MaxSize)}
	}
	return data, nil
}

// putBack returns the file to the spool under its original name.
func (c claim) putBack() error {
	if err := os.Rename(c.path, filepath.Join(c.dir, c.orig)); err != nil {
		return fmt.Errorf("spool: put back %s: %w", c.orig, err)
	}
	return nil
}

// fail moves the file to failed/ and returns its new name there; an
// existing file of that name is never replaced. failed/ is created 0700
// plus the spool folder's group bits and setgid, whatever the umask: when
// a group shares the spool, each member must be able to move files there.
func (c claim) fail() (string, error) {
	dir := filepath.Join(c.dir, FailedDir)
	if err := os.Mkdir(dir, 0o700); err == nil {
		if fi, err := os.Stat(c.dir); err == nil && fi.Mode()&0o070 != 0 {
			mode := 0o700 | fi.Mode().Perm()&0o070 | fi.Mode()&fs.ModeSetgid
			if err := os.Chmod(dir, mode); err != nil {
				return "", fmt.Errorf("spool: %w", err)
			}
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("spool: %w", err)
	}
	// Only the claimer moves a file named c.orig, so checking for an
	// earlier failure of the same name before the rename is enough.
	name := c.orig
	if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
		name = fmt.Sprintf("%s-%08x.json", strings.TrimSuffix(c.orig, ".json"), rand.Uint32())
	}
	if err := os.Rename(c.path, filepath.Join(dir, name)); err != nil {
		return "", fmt.Errorf("spool: move %s to %s: %w", c.orig, dir, err)
	}
	return filepath.Join(FailedDir, name), nil
}
