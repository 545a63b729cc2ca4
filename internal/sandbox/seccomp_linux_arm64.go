package sandbox

const (
	auditArch  = 0xc00000b7 // AUDIT_ARCH_AARCH64
	x32Bit     = 0
	sysClone   = 220
	sysUnshare = 97
	sysClone3  = 435
)

var deniedCalls = []uint32{
	217, 218, 219, // add_key, request_key, keyctl
	425, 426, 427, // io_uring_setup, io_uring_enter, io_uring_register
	280, // bpf
	241, // perf_event_open
	282, // userfaultfd
}
