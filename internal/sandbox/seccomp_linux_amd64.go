package sandbox

const (
	auditArch  = 0xc000003e // AUDIT_ARCH_X86_64
	x32Bit     = 0x40000000 // __X32_SYSCALL_BIT: x32 calls carry the same arch
	sysClone   = 56
	sysUnshare = 272
	sysClone3  = 435
)

var deniedCalls = []uint32{
	248, 249, 250, // add_key, request_key, keyctl
	425, 426, 427, // io_uring_setup, io_uring_enter, io_uring_register
	321, // bpf
	298, // perf_event_open
	323, // userfaultfd
}
