package sandbox

import (
	"syscall"
	"unsafe"
)

// The seccomp filter of the program: a deny list, small on purpose (a
// grader runs Python, compilers, Jupyter kernels; an allow list would break
// them in ways no test here would see). It refuses, with EPERM:
//   - user namespaces (unshare or clone with CLONE_NEWUSER): inside one the
//     program is root of its own namespaces, which opens much more of the
//     kernel to it; clone3, whose flags a filter cannot read, gets ENOSYS
//     so that libc falls back to clone;
//   - the kernel keyrings (add_key, request_key, keyctl): they belong to the
//     uid and outlive the run, so one run could leave data for the next;
//   - io_uring, bpf, perf_event_open, userfaultfd: large kernel surfaces an
//     unprivileged grader has no use for;
//   - any call of another ABI (i386 through int 0x80, x32): ENOSYS, since
//     the numbers above would not match them.
// auditArch and the syscall numbers come from seccomp_linux_<arch>.go; on
// an architecture without one, no filter is installed (see docs/grading-sandbox.md).

const (
	bpfLD, bpfW, bpfABS     = 0x00, 0x00, 0x20
	bpfJMP, bpfJEQ, bpfJSET = 0x05, 0x10, 0x40
	bpfJGE, bpfK, bpfRET    = 0x30, 0x00, 0x06

	seccompRetAllow = 0x7fff0000
	seccompRetErrno = 0x00050000

	seccompModeFilter = 2
	prSetSeccomp      = 22

	cloneNewUser = 0x10000000

	offNr, offArch, offArg0 = 0, 4, 16 // in struct seccomp_data (low half of args[0], little-endian)
)

type sockFilter struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

type sockFprog struct {
	len    uint16
	filter *sockFilter
}

func stmt(code uint16, k uint32) sockFilter { return sockFilter{code: code, k: k} }

func jump(code uint16, k uint32, jt, jf uint8) sockFilter {
	return sockFilter{code: code, jt: jt, jf: jf, k: k}
}

// seccompProgram builds the filter for this architecture, or nil.
func seccompProgram() []sockFilter {
	if auditArch == 0 {
		return nil
	}
	errno := func(e syscall.Errno) sockFilter { return stmt(bpfRET|bpfK, seccompRetErrno|uint32(e)) }
	p := []sockFilter{
		stmt(bpfLD|bpfW|bpfABS, offArch),
		jump(bpfJMP|bpfJEQ|bpfK, auditArch, 1, 0),
		errno(syscall.ENOSYS),
		stmt(bpfLD|bpfW|bpfABS, offNr),
	}
	if x32Bit != 0 {
		p = append(p, jump(bpfJMP|bpfJGE|bpfK, x32Bit, 0, 1), errno(syscall.ENOSYS))
	}
	// Calls refused whatever their arguments.
	for _, nr := range deniedCalls {
		p = append(p, jump(bpfJMP|bpfJEQ|bpfK, nr, 0, 1), errno(syscall.EPERM))
	}
	p = append(p, jump(bpfJMP|bpfJEQ|bpfK, sysClone3, 0, 1), errno(syscall.ENOSYS))
	// unshare and clone: refused with CLONE_NEWUSER in their first argument.
	p = append(p,
		jump(bpfJMP|bpfJEQ|bpfK, sysUnshare, 1, 0),
		jump(bpfJMP|bpfJEQ|bpfK, sysClone, 0, 3),
		stmt(bpfLD|bpfW|bpfABS, offArg0),
		jump(bpfJMP|bpfJSET|bpfK, cloneNewUser, 0, 1),
		errno(syscall.EPERM),
		stmt(bpfRET|bpfK, seccompRetAllow),
	)
	return p
}

// installSeccomp applies the filter to the calling thread, which must be
// the one that then execs (the filter goes through execve with it), and
// needs no_new_privs set.
func installSeccomp(p []sockFilter) syscall.Errno {
	if len(p) == 0 {
		return 0
	}
	prog := sockFprog{len: uint16(len(p)), filter: &p[0]}
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetSeccomp, seccompModeFilter, uintptr(unsafe.Pointer(&prog)))
	return errno
}
