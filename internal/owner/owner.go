// Package owner names a process so that another process can later tell
// whether it still runs: the outbox's lease owners and the spool's claims
// use it to take over the work of a process that died.
//
// A name carries the pid space (host, boot, pid namespace), the pid and the
// process's start time (field 22 of /proc/<pid>/stat), so a pid that the
// kernel handed to a new process is not mistaken for the old one, and a
// process in another container or before a reboot is never judged by a
// local pid that happens to match. Only names of this pid space can be
// checked; the others are Unknown and their holders decide (a lease expires,
// a claim goes stale).
package owner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// State is what can be known of a named process from here.
type State int

const (
	// Unknown: another pid space, or no start time to tell a reused pid
	// from the original (names written by older binaries).
	Unknown State = iota
	// Running: the very process that was named still runs.
	Running
	// Gone: the process exited, or its pid now belongs to another process.
	Gone
)

func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Gone:
		return "gone"
	}
	return "unknown"
}

// Process is a parsed name.
type Process struct {
	PID   int
	Start uint64 // clock ticks after boot; 0 when the name has none
	local bool   // named in this pid space
}

var self = sync.OnceValues(func() (string, uint64) {
	start, _ := startTime(os.Getpid())
	return hostScope(), start
})

// Scope identifies the pid space this process lives in: host, boot and
// pid namespace, without ':'.
func Scope() string {
	s, _ := self()
	return s
}

func hostScope() string {
	host, _ := os.Hostname()
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	ns, _ := os.Readlink("/proc/self/ns/pid")
	b := strings.TrimSpace(string(boot))
	if len(b) > 8 {
		b = b[:8]
	}
	return strings.NewReplacer(":", "_").Replace(host + "/" + b + "/" + ns)
}

// scopeHash is Scope in 8 hex digits, for names that must stay short.
func scopeHash() string {
	sum := sha256.Sum256([]byte(Scope()))
	return hex.EncodeToString(sum[:4])
}

// ID names this process as a lease owner, "<scope>:<pid>:<start>:<random>",
// and registers it. The random part tells apart several owners in one
// process.
func ID() string {
	_, start := self()
	id := fmt.Sprintf("%s:%d:%d:%08x", Scope(), os.Getpid(), start, rand.Uint32())
	Register(id)
	return id
}

// Token names this process briefly in file names: "<scope hash>.<pid>.<start>",
// digits, hex and dots only.
func Token() string {
	_, start := self()
	return fmt.Sprintf("%s.%d.%d", scopeHash(), os.Getpid(), start)
}

// ParseToken reads a Token, or a bare pid as older binaries wrote (taken
// to be of this pid space, with no start time).
func ParseToken(tok string) (Process, bool) {
	parts := strings.Split(tok, ".")
	switch len(parts) {
	case 1:
		pid, ok := parsePID(parts[0])
		return Process{PID: pid, local: true}, ok
	case 3:
		if len(parts[0]) != 8 || strings.Trim(parts[0], "0123456789abcdef") != "" {
			return Process{}, false
		}
		pid, ok := parsePID(parts[1])
		start, err := strconv.ParseUint(parts[2], 10, 64)
		if !ok || err != nil {
			return Process{}, false
		}
		return Process{PID: pid, Start: start, local: parts[0] == scopeHash()}, true
	}
	return Process{}, false
}

// parseID reads an ID: "<scope>:<pid>:<start>:<random>", or
// "<scope>:<pid>:<random>" as older binaries wrote (no start time).
func parseID(id string) (Process, bool) {
	parts := strings.Split(id, ":")
	if len(parts) != 3 && len(parts) != 4 {
		return Process{}, false
	}
	pid, ok := parsePID(parts[1])
	if !ok {
		return Process{}, false
	}
	p := Process{PID: pid, local: parts[0] == Scope()}
	if len(parts) == 4 {
		start, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil {
			return Process{}, false
		}
		p.Start = start
	}
	return p, true
}

func parsePID(s string) (int, bool) {
	pid, err := strconv.Atoi(s)
	return pid, err == nil && pid > 0 && strconv.Itoa(pid) == s
}

// State tells whether p still runs.
func (p Process) State() State {
	if !p.local {
		return Unknown
	}
	if p.PID == os.Getpid() {
		_, start := self()
		switch {
		case p.Start == 0 || start == 0:
			return Unknown
		case p.Start == start:
			return Running
		}
		return Gone
	}
	if errors.Is(syscall.Kill(p.PID, 0), syscall.ESRCH) {
		return Gone
	}
	if p.Start == 0 {
		return Unknown
	}
	start, ok := startTime(p.PID)
	switch {
	case !ok:
		// It existed a moment ago; it may have just exited, or /proc may
		// hide it (hidepid): do not guess.
		if errors.Is(syscall.Kill(p.PID, 0), syscall.ESRCH) {
			return Gone
		}
		return Unknown
	case start != p.Start:
		return Gone
	}
	return Running
}

// Alive reports whether the lease owner named by an ID may still run:
// false only when it is known to be gone. An owner with this process's pid
// is alive only if this process handed it out (Register), so the lease of
// an earlier process that had our pid is not kept.
func Alive(id string) bool {
	p, ok := parseID(id)
	if !ok {
		return true
	}
	st := p.State()
	if p.local && p.PID == os.Getpid() && st != Gone {
		return registered.has(id)
	}
	return st != Gone
}

// Register records id as an owner of this process, for Alive.
func Register(id string) { registered.add(id) }

var registered registry

type registry struct {
	mu sync.Mutex
	v  map[string]bool
}

func (r *registry) add(o string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.v == nil {
		r.v = map[string]bool{}
	}
	r.v[o] = true
}

func (r *registry) has(o string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.v[o]
}

// startTime reads a process's start time from /proc; false when it cannot.
func startTime(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseStatStart(string(b))
}

// parseStatStart takes field 22 (starttime) of a /proc/<pid>/stat line.
// The command name (field 2) is in parentheses and may hold anything, so
// the fields are counted from the last ')'.
func parseStatStart(stat string) (uint64, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(stat[i+1:])
	const field = 22 - 3 // fields[0] is field 3, the state
	if len(fields) <= field {
		return 0, false
	}
	v, err := strconv.ParseUint(fields[field], 10, 64)
	return v, err == nil
}
