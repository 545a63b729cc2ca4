// Package sandbox runs an untrusted program, an autograder with a student's
// notebook, with nothing of the service's: as a dedicated unprivileged user,
// in new mount, network, pid, IPC and UTS namespaces, in a private
// size-limited working directory, with resource limits and exactly the
// environment it is given.
//
// The grader runs the student's code (otter and nbgrader execute the
// notebook), so whatever the grader can do, the student can: the service
// itself runs as root and holds the database, the spool, consumer secrets
// and LTI private keys. A failing, hostile or runaway grader is a Result,
// never an error of Run and never a crash of the caller.
//
// Use:
//
//	res, err := sandbox.Run(ctx, sandbox.Spec{
//		User:     "ltigrade-grader",
//		Files:    []sandbox.File{{Name: "hw1.ipynb", Data: nb}, {Name: "autograder.zip", Source: zip}},
//		ReadOnly: []string{"/opt/tljh/user"}, // the grader's software
//		Argv:     []string{"otter", "run", "-a", "autograder.zip", "-o", "{dir}", "hw1.ipynb"},
//		Env:      []string{"PATH=/opt/tljh/user/bin:/usr/bin:/bin", "HOME={dir}", "LANG=C.UTF-8"},
//		Collect:  []string{"results.json"},
//	})
//
// What the program sees (docs/grading-sandbox.md says what this does not protect
// against, and how to use containers instead):
//   - a root of its own: SystemPaths (/usr, /bin, /lib*, /sbin, /etc, /sys)
//     and Spec.ReadOnly, read-only and nosuid, with the host's permissions
//     inside them (so the grader software must be world-readable, and what
//     those paths hold that the user may read, it can read); HiddenPaths
//     (/etc/ltigrade, /etc/jupyterhub) empty; nothing else of the host:
//     no /home, /root, /var, /srv, /opt, /run or their sockets;
//   - its working directory {dir} (WorkDir), 0700 and owned by the user,
//     holding only Spec.Files; it, /tmp, /var/tmp and /dev/shm are one
//     private tmpfs of Limits.Disk bytes (RAM), gone when the run ends;
//   - a /dev of null, zero, full, random, urandom and tty only;
//   - a fresh /proc showing only its own processes (hidepid=2);
//   - a network namespace with only a loopback of its own (up, since Jupyter
//     kernels talk to it): nothing outside is reachable;
//   - rlimits per process on CPU, address space, file size, open files and
//     the user's process count, no core dumps, and no_new_privs (a setuid
//     binary gives it nothing);
//   - exactly Spec.Env (nothing inherited), /dev/null as stdin, no other
//     descriptor than its three streams.
//
// Run starts this binary again (/proc/self/exe) with the hidden command
// ExecCommand in the new namespaces; the spec travels on a pipe, never in
// argv or the environment. That first stage stays root, as the namespace's
// init: it builds the root and pivots into it, writes the files, starts a
// second stage that drops to the user, sets the limits and execs Argv; it
// reaps every process, kills all that are left the moment Argv exits (or
// Wall passes), reads the Collect files back, sends them on a second pipe
// and exits, which takes the namespaces, the tmpfs and everything in them
// away: nothing is created on the host, so nothing is left on it. Any
// binary that calls Run must therefore dispatch ExecCommand to Exec:
// ltigrade's CLI has the hidden command, and test binaries call ChildMain
// first in TestMain.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ExecCommand is the hidden subcommand (argv[1]) that runs the sandbox's
// inner stages.
const ExecCommand = "__sandbox-exec"

// WorkDir is the private working directory as the program sees it, the
// value of "{dir}" in Argv and Env.
const WorkDir = "/tmp/work"

// Limits bound one run. A zero field takes its default (DefaultLimits).
// CPU, Memory, FileSize and OpenFiles are rlimits, so they bound each
// process, not their sum; Processes is RLIMIT_NPROC, which counts every
// process and thread of the user on the host, so concurrent runs as one
// user share it (give each worker its own user, or size it for all).
type Limits struct {
	Wall        time.Duration // the whole sandbox is killed after this (default 5m)
	CPU         time.Duration // RLIMIT_CPU per process, whole seconds rounded up (default: Wall)
	Memory      int64         // bytes of address space per process, RLIMIT_AS (default 2 GiB)
	Processes   int           // RLIMIT_NPROC: processes and threads of the user (default 256)
	FileSize    int64         // RLIMIT_FSIZE: largest file a process may write (default 256 MiB)
	Disk        int64         // size of the tmpfs holding {dir}, /tmp, /var/tmp, /dev/shm (default 512 MiB)
	Output      int64         // bytes of stdout and of stderr kept, the tail (default 1 MiB)
	OpenFiles   int           // RLIMIT_NOFILE (default 1024)
	CollectSize int64         // bytes kept of each collected file, the head (default 8 MiB)
}

// DefaultLimits are the values zero fields of Limits take.
var DefaultLimits = Limits{
	Wall:        5 * time.Minute,
	Memory:      2 << 30,
	Processes:   256,
	FileSize:    256 << 20,
	Disk:        512 << 20,
	Output:      1 << 20,
	OpenFiles:   1024,
	CollectSize: 8 << 20,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.Wall <= 0 {
		l.Wall = d.Wall
	}
	if l.CPU <= 0 {
		l.CPU = l.Wall
	}
	if l.Memory <= 0 {
		l.Memory = d.Memory
	}
	if l.Processes <= 0 {
		l.Processes = d.Processes
	}
	if l.FileSize <= 0 {
		l.FileSize = d.FileSize
	}
	if l.Disk <= 0 {
		l.Disk = d.Disk
	}
	if l.Output <= 0 {
		l.Output = d.Output
	}
	if l.OpenFiles <= 0 {
		l.OpenFiles = d.OpenFiles
	}
	if l.CollectSize <= 0 {
		l.CollectSize = d.CollectSize
	}
	return l
}

// File is one file put in the working directory before the program starts,
// owned by the sandbox user. Its content is Data, or when Data is nil the
// file at Source, read by Run with the caller's rights (so the autograder
// itself need not be readable by the user).
type File struct {
	Name   string      // a plain relative path inside {dir}; parents are created
	Data   []byte      // the content
	Source string      // a file to copy instead, when Data is nil
	Mode   os.FileMode // permission bits (default 0644; setuid and the like are dropped)
}

// Spec says what to run and how.
type Spec struct {
	User  string   // the dedicated unprivileged user to run as (must exist; uid and gid 0 are refused)
	Files []File   // copied into {dir}
	Argv  []string // run in {dir}; "{dir}" in an argument is replaced by WorkDir; Argv[0] is looked up in Env's PATH
	Env   []string // the whole environment, "{dir}" replaced; nil means DefaultEnv; LTIGRADE_*, JUPYTERHUB_*, JPY_* are refused
	// ReadOnly lists host paths the program may also see, read-only, at the
	// same place: the grader's software (a venv, /opt/tljh/user). Absolute;
	// SystemPaths are always visible; /tmp, /dev and /proc are the sandbox's own.
	ReadOnly []string
	Limits   Limits   // zero fields take DefaultLimits
	Collect  []string // files read back from {dir} after the run: regular files only, never through a link out of {dir}
}

// SystemPaths are the host paths every sandbox sees, read-only: enough to
// run programs from the system (/etc for passwd, ld.so.cache, certificates,
// time zones). Paths missing on the host are skipped. Everything else of
// the host (/home, /root, /var, /srv, /opt, /run, /mnt, /media, /boot) is
// absent unless listed in Spec.ReadOnly.
var SystemPaths = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys"}

// HiddenPaths are emptied inside the sandbox even where SystemPaths show
// them: ltigrade's and JupyterHub's configuration, whatever their modes.
var HiddenPaths = []string{"/etc/ltigrade", "/etc/jupyterhub"}

// DefaultEnv is the environment of a Spec without Env.
var DefaultEnv = []string{
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"HOME={dir}",
	"TMPDIR=/tmp",
	"LANG=C.UTF-8",
}

// Result is how the program ended. A program that failed, was killed or
// timed out is a Result; only a sandbox that could not be built is an error.
type Result struct {
	ExitCode int           // the program's exit status, -1 when a signal ended it
	Signal   string        // the signal that ended it ("SIGKILL", "SIGXCPU", ...), else ""
	TimedOut bool          // Wall passed and the sandbox was killed
	Duration time.Duration // from the program's start to its end

	Stdout, Stderr           []byte // the last Limits.Output bytes of each stream
	StdoutBytes, StderrBytes int64  // how many bytes each stream carried in all

	// Files holds the Collect files that existed as regular files in {dir}
	// at the end, each cut to Limits.CollectSize bytes; Truncated names the
	// ones that were cut. A missing, non-regular or escaping file is absent.
	Files     map[string][]byte
	Truncated []string
}

// Summary says in a few words how the program ended, for a status line.
func (r *Result) Summary() string {
	switch {
	case r.TimedOut:
		return "timed out after " + r.Duration.Round(time.Millisecond).String()
	case r.Signal == "SIGXCPU":
		return "killed by SIGXCPU (CPU time limit)"
	case r.Signal == "SIGXFSZ":
		return "killed by SIGXFSZ (file size limit)"
	case r.Signal != "":
		return "killed by " + r.Signal
	default:
		return "exit status " + strconv.Itoa(r.ExitCode)
	}
}

// ErrUnavailable is wrapped by Run's and Available's errors when this
// process cannot build sandboxes at all (not root, no namespaces, not
// Linux), as opposed to a Spec that is wrong.
var ErrUnavailable = errors.New("sandbox unavailable")

// Run runs s.Argv in a new sandbox and waits for it and everything it
// started to end. The error is for a sandbox that could not be set up (a
// bad Spec, a missing user, no namespaces, a cancelled ctx); cancelling ctx
// kills the sandbox.
func Run(ctx context.Context, s Spec) (*Result, error) {
	w, err := prepare(s)
	if err != nil {
		return nil, err
	}
	return run(ctx, w)
}

// Available returns nil when this process can build sandboxes: it builds an
// empty one (namespaces, mounts) and reports why not, wrapping
// ErrUnavailable.
func Available() error { return available() }

// ChildMain runs the sandbox's inner stage and exits when this process was
// started as one (os.Args[1] == ExecCommand); otherwise it returns at once.
// Call it first in TestMain of a test binary that calls Run; ltigrade's CLI
// has the hidden command instead.
func ChildMain() {
	if len(os.Args) > 1 && os.Args[1] == ExecCommand {
		os.Exit(Exec(os.Args[2:]))
	}
}

// wireSpec is what the parent sends the first stage on its pipe.
type wireSpec struct {
	UID, GID int
	Files    []wireFile
	Argv     []string
	Env      []string
	Limits   Limits
	Collect  []string
	Visible  []visiblePath // SystemPaths and Spec.ReadOnly, parents first
	Hidden   []string
	Probe    bool // set up the namespaces and mounts, then report without running anything
	// RemountEach makes the file tree read-only mount by mount, as on kernels
	// before mount_setattr (5.12); tests force it to cover that path.
	RemountEach bool
}

// visiblePath is a host directory or file shown read-only at Path; Source
// is where it really is (Path with symlinks resolved), or for a symbolic
// link at the top (/bin -> usr/bin on merged-/usr systems), Link.
type visiblePath struct {
	Path, Source, Link string
}

type wireFile struct {
	Name string
	Data []byte
	Mode os.FileMode
}

// wireResult is what the first stage sends back.
type wireResult struct {
	Err       string // setup failed: the sandbox never ran the program
	ExitCode  int
	Signal    string
	TimedOut  bool
	Duration  time.Duration
	Files     map[string][]byte
	Truncated []string
}

// forceRemountEach is set by tests to exercise the pre-5.12 remount path.
var forceRemountEach bool

// prepare checks a Spec and turns it into what the first stage needs. The
// user is looked up last so that a wrong name or argument is reported as
// such whatever the user.
func prepare(s Spec) (*wireSpec, error) {
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return nil, errors.New("sandbox: nothing to run (empty argv)")
	}
	w := &wireSpec{Limits: s.Limits.withDefaults(), RemountEach: forceRemountEach}
	for _, a := range s.Argv {
		w.Argv = append(w.Argv, expand(a))
	}
	env := s.Env
	if env == nil {
		env = DefaultEnv
	}
	for _, e := range env {
		name, _, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("sandbox: environment entry %q is not NAME=value", e)
		}
		for _, p := range serviceEnvPrefixes {
			if strings.HasPrefix(name, p) {
				// Most likely os.Environ() passed through: the grader must
				// not learn the service's config, database or hub token.
				return nil, fmt.Errorf("sandbox: environment variable %s is the service's or the hub's, not the grader's; build the environment from scratch", name)
			}
		}
		w.Env = append(w.Env, expand(e))
	}
	seen := map[string]bool{}
	for _, f := range s.Files {
		name, err := localName(f.Name)
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("sandbox: file %q given twice", name)
		}
		seen[name] = true
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = 0o644
		}
		w.Files = append(w.Files, wireFile{Name: name, Data: f.Data, Mode: mode})
	}
	for _, c := range s.Collect {
		name, err := localName(c)
		if err != nil {
			return nil, err
		}
		w.Collect = append(w.Collect, name)
	}
	var err error
	if w.Visible, err = visiblePaths(s.ReadOnly); err != nil {
		return nil, err
	}
	w.Hidden = HiddenPaths
	if w.UID, w.GID, err = lookupUser(s.User); err != nil {
		return nil, err
	}
	for i, f := range s.Files {
		if f.Data == nil && f.Source != "" {
			if w.Files[i].Data, err = os.ReadFile(f.Source); err != nil {
				return nil, fmt.Errorf("sandbox: file %s: %w", w.Files[i].Name, err)
			}
		}
	}
	return w, nil
}

// visiblePaths checks Spec.ReadOnly and adds it to SystemPaths, sorted so
// that a parent comes before what is inside it, dropping what an earlier
// path already shows.
func visiblePaths(extra []string) ([]visiblePath, error) {
	var out []visiblePath
	for _, p := range SystemPaths {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				continue
			}
			out = append(out, visiblePath{Path: p, Link: link})
		default:
			out = append(out, visiblePath{Path: p, Source: p})
		}
	}
	for _, p := range extra {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
			return nil, fmt.Errorf("sandbox: read-only path %q must be absolute and clean, and not /", p)
		}
		if err := notSandboxOwn(p, p); err != nil {
			return nil, err
		}
		src, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, fmt.Errorf("sandbox: read-only path %w", err)
		}
		// The resolved path too: the root is built on the host's /tmp, so
		// a source there would come from inside it.
		if err := notSandboxOwn(p, src); err != nil {
			return nil, err
		}
		out = append(out, visiblePath{Path: p, Source: src})
	}
	slices.SortStableFunc(out, func(a, b visiblePath) int { return strings.Compare(a.Path, b.Path) })
	var kept []visiblePath
	for _, v := range out {
		covered := false
		for _, k := range kept {
			if v.Path == k.Path || strings.HasPrefix(v.Path, k.Path+"/") {
				covered = true
			}
		}
		if !covered {
			kept = append(kept, v)
		}
	}
	return kept, nil
}

func notSandboxOwn(given, p string) error {
	for _, own := range []string{"/tmp", "/var/tmp", "/dev", "/proc"} {
		if p == own || strings.HasPrefix(p, own+"/") {
			return fmt.Errorf("sandbox: read-only path %q is inside %s, which is the sandbox's own", given, own)
		}
	}
	return nil
}

// serviceEnvPrefixes name variables of ltigrade and JupyterHub (JPY_ is the
// hub's older prefix), which never belong in a grader's environment.
var serviceEnvPrefixes = []string{"LTIGRADE_", "JUPYTERHUB_", "JPY_"}

func expand(s string) string { return strings.ReplaceAll(s, "{dir}", WorkDir) }

// localName accepts a plain relative path that stays inside the directory.
func localName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || !filepath.IsLocal(name) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("sandbox: file name %q must be a relative path inside the working directory", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("sandbox: file name %q must not contain \"..\"", name)
		}
	}
	name = filepath.Clean(name)
	if name == "." {
		return "", fmt.Errorf("sandbox: file name %q names the directory itself", name)
	}
	return name, nil
}

// lookupUser resolves the sandbox user and refuses root's ids: running the
// grader as root would undo the whole sandbox.
func lookupUser(name string) (uid, gid int, err error) {
	if name == "" {
		return 0, 0, errors.New("sandbox: no user to run as; create a dedicated one (useradd --system --user-group --no-create-home --shell /usr/sbin/nologin ltigrade-grader)")
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("sandbox: user %q: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("sandbox: user %q has non-numeric ids %s:%s", name, u.Uid, u.Gid)
	}
	if uid == 0 || gid == 0 {
		return 0, 0, fmt.Errorf("sandbox: user %q has uid or gid 0; the grader must run as an unprivileged user", name)
	}
	return uid, gid, nil
}

// tail keeps the last max bytes written to it and counts them all.
type tail struct {
	max   int
	buf   []byte
	total int64
}

func (t *tail) Write(p []byte) (int, error) {
	t.total += int64(len(p))
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	// Trim in batches so a stream of small writes costs amortised O(1).
	if len(t.buf) > 2*t.max {
		n := copy(t.buf, t.buf[len(t.buf)-t.max:])
		t.buf = t.buf[:n]
	}
	return len(p), nil
}

func (t *tail) bytes() []byte {
	if len(t.buf) > t.max {
		return t.buf[len(t.buf)-t.max:]
	}
	return t.buf
}
