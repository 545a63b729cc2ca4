package sandbox

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The namespaces of a sandbox: its own mounts, network, pids, System V IPC
// and hostname.
const cloneFlags = syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWPID |
	syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS

// backstop is how long past Wall the parent waits before killing the
// sandbox's init itself: the init enforces Wall (and then still collects
// the files); the parent's kill is for an init that cannot.
const backstop = 15 * time.Second

// executable is the binary Run starts as the first stage: this very one,
// even if its file was replaced or deleted by an upgrade since the service
// started. Tests point it at a built ltigrade.
var executable = "/proc/self/exe"

func available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: it needs root (to make namespaces and switch to the sandbox user)", ErrUnavailable)
	}
	visible, err := visiblePaths(nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	_, err = run(context.Background(), &wireSpec{Probe: true, Visible: visible, Hidden: HiddenPaths,
		Limits: Limits{Wall: 30 * time.Second}.withDefaults()})
	if err != nil && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// run starts the first stage in new namespaces, feeds it the spec, keeps
// the output tails and waits for its report.
func run(ctx context.Context, w *wireSpec) (*Result, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: it needs root (to make namespaces and switch to the sandbox user)", ErrUnavailable)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		specR.Close()
		specW.Close()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	stdout := &tail{max: int(w.Limits.Output)}
	stderr := &tail{max: int(w.Limits.Output)}
	cmd := exec.Command(executable, ExecCommand, "init")
	// argv[0] stays this process's: a binary that picks its command by
	// argv[0] (testscript runs a test binary as "ltigrade") must get to
	// ExecCommand, not start over.
	cmd.Args[0] = os.Args[0]
	cmd.Env = []string{} // not nil: nil would inherit the service's environment
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{specR, resW} // fd 3 and 4 of the first stage
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: cloneFlags,
		Setpgid:    true,
		// If the service dies, so does the sandbox (its init first, then,
		// by the pid namespace, everything in it). The signal follows the
		// OS thread that started the init, which Go keeps alive unless a
		// goroutine exits while locked to it: do not call Run from one.
		Pdeathsig: syscall.SIGKILL,
	}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Start()
	specR.Close()
	resW.Close()
	if err != nil {
		specW.Close()
		resR.Close()
		return nil, fmt.Errorf("%w: cannot start a process in new namespaces: %v", ErrUnavailable, err)
	}
	go func() {
		// An init that died early makes this fail with EPIPE; its exit says why.
		_ = gob.NewEncoder(specW).Encode(w)
		specW.Close()
	}()
	type report struct {
		r   wireResult
		err error
	}
	reports := make(chan report, 1)
	go func() {
		var r wireResult
		err := gob.NewDecoder(resR).Decode(&r)
		resR.Close()
		reports <- report{r, err}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	backstopTimer := time.NewTimer(w.Limits.Wall + backstop)
	defer backstopTimer.Stop()
	var waitErr error
	killed := false
	select {
	case waitErr = <-waited:
	case <-backstopTimer.C:
		killed = true
		_ = cmd.Process.Kill()
		waitErr = <-waited
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-waited
		<-reports
		return nil, fmt.Errorf("sandbox: %w", ctx.Err())
	}
	rep := <-reports
	res := &Result{
		Stdout: stdout.bytes(), Stderr: stderr.bytes(),
		StdoutBytes: stdout.total, StderrBytes: stderr.total,
	}
	if killed {
		res.ExitCode, res.Signal, res.TimedOut, res.Duration = -1, "SIGKILL", true, time.Since(start)
		return res, nil
	}
	if rep.err != nil {
		msg := strings.TrimSpace(string(lastLine(stderr.bytes())))
		return nil, fmt.Errorf("sandbox: the sandbox ended without a report (%v): %s", waitErr, msg)
	}
	if rep.r.Err != "" {
		return nil, errors.New("sandbox: " + rep.r.Err)
	}
	res.ExitCode, res.Signal, res.TimedOut, res.Duration = rep.r.ExitCode, rep.r.Signal, rep.r.TimedOut, rep.r.Duration
	res.Files, res.Truncated = rep.r.Files, rep.r.Truncated
	if res.Files == nil {
		res.Files = map[string][]byte{}
	}
	return res, nil
}

func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if len(b) > 300 {
		b = b[len(b)-300:]
	}
	return b
}

// Exec is the body of the hidden command ExecCommand: args[0] names the
// stage. It returns an exit code, or does not return (the second stage
// becomes the program).
func Exec(args []string) int {
	// Started by Run, fd 3 is the spec's pipe; from a shell it is not.
	if len(args) == 1 && isPipe(3) {
		switch args[0] {
		case "init":
			return stageInit()
		case "run":
			return stageRun()
		}
	}
	fmt.Fprintf(os.Stderr, "%s is started by the sandbox itself (internal/sandbox), not by hand\n", ExecCommand)
	return 2
}

func isPipe(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFIFO
}

// runSpec is what the first stage sends the second on its pipe.
type runSpec struct {
	UID, GID int
	Argv     []string
	Env      []string
	Limits   Limits
}

// stageInit is the sandbox's init (pid 1 of its pid namespace, still root):
// fd 3 brings the spec, fd 4 takes the report.
func stageInit() int {
	// Whatever the service had open without close-on-exec (inherited from
	// its own parent, or opened by a C library) stops here.
	if err := closeOnExecFrom(3); err != nil {
		return 1
	}
	out := os.NewFile(4, "report")
	send := func(r wireResult) int {
		if err := gob.NewEncoder(out).Encode(r); err != nil {
			return 1
		}
		out.Close()
		return 0
	}
	fail := func(format string, a ...any) int { return send(wireResult{Err: fmt.Sprintf(format, a...)}) }

	in := os.NewFile(3, "spec")
	var w wireSpec
	err := gob.NewDecoder(in).Decode(&w)
	in.Close()
	if err != nil {
		return fail("reading the spec: %v", err)
	}
	if err := setupMounts(&w); err != nil {
		return fail("%v", err)
	}
	if w.Probe {
		return send(wireResult{})
	}
	if err := writeFiles(&w); err != nil {
		return fail("%v", err)
	}
	// Cosmetic but cheap: the program's hostname is not the hub's.
	_ = syscall.Sethostname([]byte("sandbox"))
	if err := loopbackUp(); err != nil {
		return fail("bringing up the sandbox's loopback: %v", err)
	}

	pid, err := startStage2(&w)
	if err != nil {
		return fail("%v", err)
	}
	start := time.Now()
	var timedOut atomic.Bool
	timer := time.AfterFunc(w.Limits.Wall, func() {
		timedOut.Store(true)
		_ = syscall.Kill(-1, syscall.SIGKILL) // from init: everything in the namespace but itself
	})
	var res wireResult
	done := false
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil { // ECHILD: nothing left in the namespace
			break
		}
		if wpid == pid {
			done = true
			timer.Stop()
			res.Duration = time.Since(start)
			res.ExitCode, res.Signal = ws.ExitStatus(), ""
			if ws.Signaled() {
				res.ExitCode, res.Signal = -1, signalName(ws.Signal())
			}
		}
		if done {
			// Whatever the program left behind must not outlive it (nor
			// touch the files about to be collected); loop because a
			// process can fork while the kill sweeps.
			_ = syscall.Kill(-1, syscall.SIGKILL)
		}
	}
	res.TimedOut = timedOut.Load()
	res.Files, res.Truncated = collect(&w)
	return send(res)
}

// newRoot is where the sandbox's root is assembled before pivot_root: the
// host's /tmp, covered by a tmpfs in this mount namespace only.
const newRoot = "/tmp"

// setupMounts gives the sandbox its own root: the visible paths read-only
// and nosuid, a minimal /dev, a fresh tmpfs on /tmp (shared with /var/tmp
// and /dev/shm) holding WorkDir, and a /proc of its own pid namespace.
// The host's root is then pivoted away and detached.
func setupMounts(w *wireSpec) error {
	// Nothing mounted here may propagate back to the host, nor the host's
	// later mounts in.
	if err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := syscall.Mount("tmpfs", newRoot, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=1m,nr_inodes=4096,mode=0755"); err != nil {
		return fmt.Errorf("mounting the sandbox's root: %w", err)
	}
	in := func(p string) string { return filepath.Join(newRoot, p) }
	for _, d := range []string{"/dev", "/proc", "/tmp", "/var/tmp"} {
		if err := os.MkdirAll(in(d), 0o755); err != nil {
			return fmt.Errorf("making %s: %w", d, err)
		}
	}
	for _, v := range w.Visible {
		if err := showPath(in(v.Path), v); err != nil {
			return err
		}
	}
	for _, h := range w.Hidden {
		if fi, err := os.Stat(in(h)); err == nil && fi.IsDir() {
			if err := syscall.Mount("tmpfs", in(h), "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "size=4k,nr_inodes=16,mode=0755"); err != nil {
				return fmt.Errorf("hiding %s: %w", h, err)
			}
		}
	}
	if err := readOnlyTree(newRoot, w.RemountEach); err != nil {
		return err
	}
	// The writable part, mounted after the tree was made read-only.
	if err := minimalDev(in("/dev")); err != nil {
		return err
	}
	inodes := w.Limits.Disk / 16384
	if inodes < 4096 {
		inodes = 4096
	}
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=1777", w.Limits.Disk, inodes)
	if err := syscall.Mount("tmpfs", in("/tmp"), "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mounting the tmpfs on /tmp: %w", err)
	}
	for _, d := range []string{"/var/tmp", "/dev/shm"} {
		if err := syscall.Mount(in("/tmp"), in(d), "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding /tmp on %s: %w", d, err)
		}
	}
	// Now /dev is complete: nothing may be added to it.
	if err := syscall.Mount("", in("/dev"), "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("making /dev read-only: %w", err)
	}
	// hidepid=2: the program sees its own processes only, not the root init.
	if err := syscall.Mount("proc", in("/proc"), "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "hidepid=2"); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on the new one; detaching it
	// leaves nothing of the host's tree reachable by path.
	if err := syscall.Chdir(newRoot); err != nil {
		return fmt.Errorf("entering the sandbox's root: %w", err)
	}
	if err := syscall.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := syscall.Unmount(".", syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host's root: %w", err)
	}
	if err := syscall.Chdir("/"); err != nil {
		return err
	}
	if w.Probe {
		return nil
	}
	if err := os.Mkdir(WorkDir, 0o700); err != nil {
		return fmt.Errorf("making %s: %w", WorkDir, err)
	}
	if err := os.Chown(WorkDir, w.UID, w.GID); err != nil {
		return fmt.Errorf("giving %s to the sandbox user: %w", WorkDir, err)
	}
	return nil
}

// showPath makes v visible at dst in the new root: the same symbolic link,
// or a recursive bind mount of its source (made read-only with the rest).
func showPath(dst string, v visiblePath) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("showing %s: %w", v.Path, err)
	}
	if v.Link != "" {
		if err := os.Symlink(v.Link, dst); err != nil {
			return fmt.Errorf("showing %s: %w", v.Path, err)
		}
		return nil
	}
	fi, err := os.Stat(v.Source)
	if err != nil {
		return fmt.Errorf("showing %s: %w", v.Path, err)
	}
	if fi.IsDir() {
		err = os.Mkdir(dst, 0o755)
	} else {
		var f *os.File
		if f, err = os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("showing %s: %w", v.Path, err)
	}
	if err := syscall.Mount(v.Source, dst, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("showing %s: %w", v.Path, err)
	}
	return nil
}

// devices are the host's device nodes a program gets; everything else in
// the host's /dev (disks, GPUs, kvm, fuse, tun, consoles, the kernel log)
// stays out of reach.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

const oPath = 0x200000 // O_PATH, which package syscall does not name

// minimalDev puts a tmpfs on dev (the sandbox's /dev) holding only devices
// (bind mounts of the host's nodes), the usual fd and std* links, and shm.
func minimalDev(dev string) error {
	// Bind from O_PATH descriptors through /proc/self/fd (the host's /proc
	// at this point), so that nothing but the node itself is resolved.
	fds := make([]int, len(devices))
	for i, d := range devices {
		fd, err := syscall.Open("/dev/"+d, oPath|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening /dev/%s: %w", d, err)
		}
		defer syscall.Close(fd)
		fds[i] = fd
	}
	if err := syscall.Mount("tmpfs", dev, "tmpfs", syscall.MS_NOSUID|syscall.MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	for i, d := range devices {
		node := filepath.Join(dev, d)
		f, err := os.OpenFile(node, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
		if err != nil {
			return fmt.Errorf("making %s: %w", node, err)
		}
		f.Close()
		if err := syscall.Mount("/proc/self/fd/"+strconv.Itoa(fds[i]), node, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding %s: %w", node, err)
		}
	}
	for link, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, link)); err != nil {
			return fmt.Errorf("making /dev/%s: %w", link, err)
		}
	}
	if err := os.Mkdir(filepath.Join(dev, "shm"), 0o1777); err != nil {
		return fmt.Errorf("making /dev/shm: %w", err)
	}
	return nil
}

// mount_setattr(2) (Linux 5.12), the same number on every architecture.
const (
	sysMountSetattr   = 442
	atRecursive       = 0x8000
	mountAttrRdonly   = 0x1
	mountAttrNosuid   = 0x2
	mountAttrSize     = 32
	atFdcwd           = -100
	remountFlagsFixed = syscall.MS_REMOUNT | syscall.MS_BIND | syscall.MS_RDONLY | syscall.MS_NOSUID
)

// readOnlyTree makes every mount at or under root read-only and nosuid:
// the program may then write nowhere but the tmpfs mounted afterwards,
// however world-writable a host directory it sees is.
func readOnlyTree(root string, each bool) error {
	if !each {
		attr := struct{ set, clr, propagation, userns uint64 }{set: mountAttrRdonly | mountAttrNosuid}
		path := []byte(root + "\x00")
		dirfd := atFdcwd
		_, _, errno := syscall.Syscall6(sysMountSetattr, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])),
			atRecursive, uintptr(unsafe.Pointer(&attr)), mountAttrSize, 0)
		if errno == 0 {
			return nil
		}
		// ENOSYS before 5.12; EPERM where a seccomp filter does not know
		// it: the remount below either works or says why not.
	}
	// Before 5.12: remount each mount, keeping the restrictions it had.
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("making the file tree read-only: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp != root && !strings.HasPrefix(mp, root+"/") {
			continue
		}
		flags := uintptr(remountFlagsFixed)
		for _, o := range strings.Split(f[5], ",") {
			switch o {
			case "nodev":
				flags |= syscall.MS_NODEV
			case "noexec":
				flags |= syscall.MS_NOEXEC
			case "noatime":
				flags |= syscall.MS_NOATIME
			case "nodiratime":
				flags |= syscall.MS_NODIRATIME
			case "relatime":
				flags |= syscall.MS_RELATIME
			}
		}
		if err := syscall.Mount("", mp, "", flags, ""); err != nil && err != syscall.ENOENT {
			return fmt.Errorf("making %s read-only: %w", mp, err)
		}
	}
	return nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, ok := octal3(s[i+1 : i+4]); ok {
				b.WriteByte(n)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		n = n*8 + int(c-'0')
	}
	return byte(n), n < 256
}

// writeFiles puts the spec's files in WorkDir, owned by the sandbox user.
// Nothing of the program runs yet, so plain paths are safe here.
func writeFiles(w *wireSpec) error {
	for _, f := range w.Files {
		dir := WorkDir
		parts := strings.Split(f.Name, "/")
		for _, p := range parts[:len(parts)-1] {
			dir = filepath.Join(dir, p)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("file %s: %w", f.Name, err)
			}
			if err := os.Lchown(dir, w.UID, w.GID); err != nil {
				return fmt.Errorf("file %s: %w", f.Name, err)
			}
		}
		path := filepath.Join(WorkDir, f.Name)
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("file %s: %w", f.Name, err)
		}
		_, err = fh.Write(f.Data)
		if err == nil {
			err = fh.Chown(w.UID, w.GID)
		}
		if err == nil {
			err = fh.Chmod(f.Mode.Perm())
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("file %s does not fit in the sandbox's disk (%d bytes)", f.Name, w.Limits.Disk)
		}
		if err != nil {
			return fmt.Errorf("file %s: %w", f.Name, err)
		}
	}
	return nil
}

// loopbackUp brings up the namespace's own loopback: Jupyter kernels (which
// nbgrader starts) talk to it. It reaches nothing outside the namespace.
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr struct {
		name  [16]byte
		flags uint16
		_     [22]byte
	}
	copy(ifr.name[:], "lo")
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return errno
	}
	ifr.flags |= syscall.IFF_UP
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return errno
	}
	return nil
}

// startStage2 starts the second stage and returns once it has become the
// program (its error pipe closed on exec) or says why it could not.
func startStage2(w *wireSpec) (int, error) {
	specR, specW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	// The streams are pipes the service made as root (mode 0600): give them
	// to the user so that opening /dev/stdout or /dev/stderr by path works.
	for _, fd := range []int{1, 2} {
		if err := syscall.Fchown(fd, w.UID, w.GID); err != nil {
			return 0, fmt.Errorf("giving the output streams to the sandbox user: %w", err)
		}
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{os.Args[0], ExecCommand, "run"}, &syscall.ProcAttr{
		Dir:   WorkDir,
		Env:   []string{},
		Files: []uintptr{null.Fd(), 1, 2, specR.Fd(), errW.Fd()},
		// A session of its own: no controlling terminal to push input into.
		Sys: &syscall.SysProcAttr{Setsid: true},
	})
	null.Close()
	specR.Close()
	errW.Close()
	if err != nil {
		specW.Close()
		errR.Close()
		return 0, fmt.Errorf("starting the program: %w", err)
	}
	_ = gob.NewEncoder(specW).Encode(runSpec{UID: w.UID, GID: w.GID, Argv: w.Argv, Env: w.Env, Limits: w.Limits})
	specW.Close()
	msg, _ := io.ReadAll(io.LimitReader(errR, 4096))
	errR.Close()
	if len(msg) > 0 {
		var ws syscall.WaitStatus
		for {
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
				break
			}
		}
		return 0, errors.New(string(msg))
	}
	return pid, nil
}

// stageRun is the second stage: still root, in the sandbox's namespaces. It
// drops to the user, sets the limits and execs the program; fd 3 brings its
// spec, fd 4 takes an error (and closes on a successful exec).
func stageRun() int {
	// The seccomp filter is per thread: the one that installs it must be
	// the one that execs.
	runtime.LockOSThread()
	if err := closeOnExecFrom(3); err != nil {
		return 1
	}
	fail := func(format string, a ...any) int {
		_, _ = syscall.Write(4, []byte(fmt.Sprintf(format, a...)))
		return 1
	}
	in := os.NewFile(3, "spec")
	var s runSpec
	err := gob.NewDecoder(in).Decode(&s)
	in.Close()
	if err != nil {
		return fail("reading the program's spec: %v", err)
	}
	// A setuid or file-capability binary gives the program nothing.
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, 38 /* PR_SET_NO_NEW_PRIVS */, 1, 0, 0, 0, 0); errno != 0 {
		return fail("setting no_new_privs: %v", errno)
	}
	// Go applies these to every thread (since 1.16).
	if err := syscall.Setgroups([]int{}); err != nil {
		return fail("dropping groups: %v", err)
	}
	if err := syscall.Setgid(s.GID); err != nil {
		return fail("switching to gid %d: %v", s.GID, err)
	}
	if err := syscall.Setuid(s.UID); err != nil {
		return fail("switching to uid %d: %v", s.UID, err)
	}
	if syscall.Getuid() != s.UID || syscall.Geteuid() != s.UID || syscall.Getgid() != s.GID || syscall.Getegid() != s.GID {
		return fail("still privileged after switching to %d:%d", s.UID, s.GID)
	}
	if err := syscall.Chdir(WorkDir); err != nil {
		return fail("entering %s: %v", WorkDir, err)
	}
	path, err := lookPath(s.Argv[0], s.Env)
	if err != nil {
		return fail("%v", err)
	}
	pathp, err := syscall.BytePtrFromString(path)
	if err != nil {
		return fail("program %q: %v", path, err)
	}
	argvp, err := syscall.SlicePtrFromStrings(s.Argv)
	if err != nil {
		return fail("arguments: %v", err)
	}
	envp, err := syscall.SlicePtrFromStrings(s.Env)
	if err != nil {
		return fail("environment: %v", err)
	}
	filter := seccompProgram()
	// Limits last: everything above may allocate, and a low RLIMIT_AS could
	// starve this Go process before it becomes the program.
	l := s.Limits
	cpu := uint64((l.CPU + time.Second - 1) / time.Second)
	for _, r := range []struct {
		res      int
		cur, max uint64
	}{
		{syscall.RLIMIT_CORE, 0, 0},
		// SIGXCPU at the limit says why the program died; SIGKILL a second
		// later ends one that catches it.
		{syscall.RLIMIT_CPU, cpu, cpu + 1},
		{syscall.RLIMIT_AS, uint64(l.Memory), uint64(l.Memory)},
		{syscall.RLIMIT_FSIZE, uint64(l.FileSize), uint64(l.FileSize)},
		{syscall.RLIMIT_NOFILE, uint64(l.OpenFiles), uint64(l.OpenFiles)},
		{rlimitNproc, uint64(l.Processes), uint64(l.Processes)},
	} {
		if err := syscall.Setrlimit(r.res, &syscall.Rlimit{Cur: r.cur, Max: r.max}); err != nil {
			return fail("setting limit %d: %v", r.res, err)
		}
	}
	// Nothing but the three streams goes through the exec (the first stage
	// already did this; this is the last line).
	if err := closeOnExecFrom(3); err != nil {
		return fail("closing inherited descriptors: %v", err)
	}
	if errno := installSeccomp(filter); errno != 0 {
		return fail("installing the seccomp filter: %v", errno)
	}
	_, _, errno := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(pathp)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])))
	return fail("exec %s: %v", path, errno)
}

// closeOnExecFrom marks every descriptor from min on close-on-exec (not
// closed: the Go runtime has its own among them).
func closeOnExecFrom(min int) error {
	const sysCloseRange, closeRangeCloexec = 436, 4 // Linux 5.11
	if _, _, errno := syscall.RawSyscall(sysCloseRange, uintptr(min), ^uintptr(0), closeRangeCloexec); errno == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= min {
			syscall.CloseOnExec(fd)
		}
	}
	return nil
}

const rlimitNproc = 6 // RLIMIT_NPROC, which package syscall does not name

// lookPath finds argv0 in the PATH of the program's environment (not this
// process's, which is empty), as the sandbox user.
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		return argv0, nil
	}
	pathVar := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, argv0)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && syscall.Access(p, 1 /* X_OK */) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("program %q: not found in the sandbox's PATH (%s) or not executable by the sandbox user", argv0, pathVar)
}

// collect reads the Collect files back after every process of the sandbox
// is gone (so nothing can swap them meanwhile). This runs as root, so it
// must not be tricked into reading the host: os.Root refuses any path or
// symlink that leaves WorkDir (a link inside it is harmless), and only
// regular files on the tmpfs itself are read (O_NONBLOCK: a FIFO cannot
// hang it).
func collect(w *wireSpec) (map[string][]byte, []string) {
	files := map[string][]byte{}
	var cut []string
	if len(w.Collect) == 0 {
		return files, nil
	}
	root, err := os.OpenRoot(WorkDir)
	if err != nil {
		return files, nil
	}
	defer root.Close()
	rootInfo, err := root.Stat(".")
	if err != nil {
		return files, nil
	}
	rootDev := rootInfo.Sys().(*syscall.Stat_t).Dev
	for _, name := range w.Collect {
		f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() || fi.Sys().(*syscall.Stat_t).Dev != rootDev {
			f.Close()
			continue
		}
		data, err := io.ReadAll(io.LimitReader(f, w.Limits.CollectSize+1))
		f.Close()
		if err != nil {
			continue
		}
		if int64(len(data)) > w.Limits.CollectSize {
			data = data[:w.Limits.CollectSize]
			cut = append(cut, name)
		}
		files[name] = data
	}
	return files, cut
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "SIGABRT", syscall.SIGALRM: "SIGALRM", syscall.SIGBUS: "SIGBUS",
	syscall.SIGFPE: "SIGFPE", syscall.SIGHUP: "SIGHUP", syscall.SIGILL: "SIGILL",
	syscall.SIGINT: "SIGINT", syscall.SIGKILL: "SIGKILL", syscall.SIGPIPE: "SIGPIPE",
	syscall.SIGQUIT: "SIGQUIT", syscall.SIGSEGV: "SIGSEGV", syscall.SIGSYS: "SIGSYS",
	syscall.SIGTERM: "SIGTERM", syscall.SIGTRAP: "SIGTRAP", syscall.SIGUSR1: "SIGUSR1",
	syscall.SIGUSR2: "SIGUSR2", syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ",
}

func signalName(s syscall.Signal) string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}
