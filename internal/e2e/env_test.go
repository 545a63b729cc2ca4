package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	return root
}

// hubEnv is what scripts/hub-env.sh prints: KEY=VALUE lines naming the
// venv's jupyterhub, the single-user server, node and configurable-http-proxy.
type hubEnv map[string]string

// envExitUnreachable is hub-env.sh's exit code for "PyPI or npm cannot be
// reached": the one case in which the hub tests skip.
const envExitUnreachable = 3

var (
	hubEnvOnce sync.Once
	hubEnvVal  hubEnv
	hubEnvErr  error
	hubEnvSkip string
)

// loadHubEnv reads $LTIGRADE_HUB_ENV_FILE (written by `make test`), else runs
// scripts/hub-env.sh itself. It skips the test only when the script said the
// package indexes cannot be reached (exit 3); every other problem fails.
func loadHubEnv(t *testing.T) hubEnv {
	t.Helper()
	hubEnvOnce.Do(func() {
		var out []byte
		if f := os.Getenv("LTIGRADE_HUB_ENV_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				hubEnvErr = fmt.Errorf("LTIGRADE_HUB_ENV_FILE: %v", err)
				return
			}
			out = b
		} else {
			cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "hub-env.sh"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			b, err := cmd.Output()
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == envExitUnreachable {
				hubEnvSkip = "scripts/hub-env.sh could not reach PyPI or npm (exit 3), so there is no JupyterHub to test against:\n" + stderr.String()
				return
			}
			if err != nil {
				hubEnvErr = fmt.Errorf("scripts/hub-env.sh: %v\n%s", err, stderr.String())
				return
			}
			out = b
		}
		env := hubEnv{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
				env[k] = v
			}
		}
		if env["HUB_ENV_EXIT"] == strconv.Itoa(envExitUnreachable) {
			hubEnvSkip = "scripts/hub-env.sh could not reach PyPI or npm (exit 3; its message is in the `make test` output above), so there is no JupyterHub to test against"
			return
		}
		for _, k := range []string{"JUPYTERHUB", "JUPYTERHUB_SINGLEUSER", "NODE", "CHP", "HUB_PYTHON"} {
			if env[k] == "" {
				hubEnvErr = fmt.Errorf("hub environment lacks %s (got %q)", k, out)
				return
			}
			if _, err := os.Stat(env[k]); err != nil {
				hubEnvErr = fmt.Errorf("hub environment: %s: %v", k, err)
				return
			}
		}
		hubEnvVal = env
	})
	if hubEnvSkip != "" {
		t.Skip(hubEnvSkip)
	}
	if hubEnvErr != nil {
		t.Fatal(hubEnvErr)
	}
	return hubEnvVal
}

// buildLtigrade compiles the CLI into dir and returns its path.
func buildLtigrade(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "ltigrade")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/ltigrade")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ltigrade: %v\n%s", err, out)
	}
	return bin
}

// freePorts returns n distinct free loopback ports. They are held open
// together so no two are the same, then released for the servers to take.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// cleanEnv is the test process's environment without ltigrade's own
// variables, so nothing started here picks up a developer's settings.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LTIGRADE_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// proc is a background process in its own process group, killed (with the
// whole group) when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(t *testing.T, name, logFile string, cmd *exec.Cmd) *proc {
	t.Helper()
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(10 * time.Second) })
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs
// the group.
func (p *proc) stop(grace time.Duration) {
	pgid := p.cmd.Process.Pid
	if !p.exited() {
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	// Children the leader left behind in its group go too.
	syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// signalPIDFiles sends sig to the process groups of the live processes
// named in files matching glob (see killPIDFiles) and waits up to wait for
// them to exit.
func signalPIDFiles(glob, want string, sig syscall.Signal, wait time.Duration) {
	pids := livePIDs(glob, want)
	for _, pid := range pids {
		syscall.Kill(-pid, sig)
	}
	deadline := time.Now().Add(wait)
	for _, pid := range pids {
		for time.Now().Before(deadline) && alive(pid) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// livePIDs reads the pids written into files matching glob and keeps those
// still running whose command line contains want (so a recycled pid is left
// alone).
func livePIDs(glob, want string) []int {
	var pids []int
	files, _ := filepath.Glob(glob)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(cmdline, []byte(want)) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// killPIDFiles kills, with their process groups, the processes whose pids
// were written into files matching glob, if they are still running and their
// command line contains want (so a recycled pid is left alone).
func killPIDFiles(glob, want string) {
	for _, pid := range livePIDs(glob, want) {
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// tail returns the last n lines of a file.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
