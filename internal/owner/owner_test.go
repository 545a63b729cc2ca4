package owner

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// sleeper starts a child that runs until the test ends and returns its pid.
func sleeper(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// deadPid is the pid of a child that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestStartTimeReadsProcStat(t *testing.T) {
	pid := sleeper(t)
	start, ok := startTime(pid)
	if !ok || start == 0 {
		t.Fatalf("no start time for a running child: %d %v", start, ok)
	}
	self, ok := startTime(os.Getpid())
	if !ok || self == 0 || self > start {
		t.Errorf("this process started at %d, its child at %d", self, start)
	}
	if _, ok := startTime(deadPid(t)); ok {
		t.Error("a start time for a process that is gone")
	}
}

// The comm field may hold spaces and parentheses; the fields after it count
// from the last ')'.
func TestParseStatStart(t *testing.T) {
	stat := "4242 (evil) (name 1 2 3) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	if got, ok := parseStatStart(stat); !ok || got != 987654 {
		t.Errorf("got %d %v", got, ok)
	}
	for _, bad := range []string{"", "4242 (x", "4242 (x) S 1 2", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 abc"} {
		if _, ok := parseStatStart(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestIDCarriesScopePidAndStartTime(t *testing.T) {
	id := ID()
	start, _ := startTime(os.Getpid())
	want := fmt.Sprintf("%s:%d:%d:", Scope(), os.Getpid(), start)
	if !strings.HasPrefix(id, want) || !regexp.MustCompile(`:[0-9a-f]{8}$`).MatchString(id) {
		t.Errorf("ID %q, want %q<random>", id, want)
	}
	if ID() == id {
		t.Error("two IDs of one process are equal: leases of two engines would mix")
	}
}

func TestAlive(t *testing.T) {
	live := sleeper(t)
	liveStart, ok := startTime(live)
	if !ok {
		t.Fatal("no start time")
	}
	dead := deadPid(t)
	self := os.Getpid()
	selfStart, _ := startTime(self)
	mine := ID()
	for _, c := range []struct {
		name  string
		owner string
		alive bool
	}{
		{"this process's own id", mine, true},
		{"our pid and start time, but not an id this process handed out", fmt.Sprintf("%s:%d:%d:00000000", Scope(), self, selfStart), false},
		{"our pid, another start time: an earlier process with our pid", fmt.Sprintf("%s:%d:%d:00000000", Scope(), self, selfStart+1), false},
		{"a live process", fmt.Sprintf("%s:%d:%d:00000000", Scope(), live, liveStart), true},
		{"a live pid that another process had before", fmt.Sprintf("%s:%d:%d:00000000", Scope(), live, liveStart+1), false},
		{"a dead pid", fmt.Sprintf("%s:%d:%d:00000000", Scope(), dead, liveStart), false},
		{"start time unknown (no /proc), live pid", fmt.Sprintf("%s:%d:0:00000000", Scope(), live), true},
		{"another pid space", fmt.Sprintf("other-host/x/y:%d:%d:00000000", dead, liveStart), true},
		{"garbage", "garbage", true},
		{"bad pid", Scope() + ":x:1:0", true},
		{"bad start", fmt.Sprintf("%s:%d:x:0", Scope(), dead), true},
		// Owners written by older binaries: scope:pid:random, no start time.
		{"old format, live pid", fmt.Sprintf("%s:%d:0badf00d", Scope(), live), true},
		{"old format, dead pid", fmt.Sprintf("%s:%d:0badf00d", Scope(), dead), false},
		{"old format, our pid, not ours", fmt.Sprintf("%s:%d:0badf00d", Scope(), self), false},
		{"old format, another host", fmt.Sprintf("other-host:%d:0", dead), true},
	} {
		if got := Alive(c.owner); got != c.alive {
			t.Errorf("%s: Alive(%q) = %v", c.name, c.owner, got)
		}
	}
	old := fmt.Sprintf("%s:%d:0badf00d", Scope(), self)
	Register(old)
	if !Alive(old) {
		t.Error("an old-format owner this process registered is not alive")
	}
}

func TestTokenIsShortAndFilesystemSafe(t *testing.T) {
	tok := Token()
	if !regexp.MustCompile(`^[0-9a-f]{8}\.[0-9]+\.[0-9]+$`).MatchString(tok) || len(tok) > 40 {
		t.Errorf("token %q", tok)
	}
	if Token() != tok {
		t.Error("the token of one process changes")
	}
}

func TestTokenState(t *testing.T) {
	live := sleeper(t)
	liveStart, _ := startTime(live)
	dead := deadPid(t)
	self := os.Getpid()
	selfStart, _ := startTime(self)
	h := scopeHash()
	for _, c := range []struct {
		name string
		tok  string
		want State
	}{
		{"this process", Token(), Running},
		{"our pid, another start time", fmt.Sprintf("%s.%d.%d", h, self, selfStart+1), Gone},
		{"a live process", fmt.Sprintf("%s.%d.%d", h, live, liveStart), Running},
		{"a live pid, reused", fmt.Sprintf("%s.%d.%d", h, live, liveStart+7), Gone},
		{"a dead pid", fmt.Sprintf("%s.%d.%d", h, dead, liveStart), Gone},
		{"start unknown, live pid", fmt.Sprintf("%s.%d.0", h, live), Unknown},
		{"another host, boot or container", fmt.Sprintf("0badf00d.%d.%d", dead, liveStart), Unknown},
		// Older binaries named spool claims by pid alone.
		{"bare pid, dead", fmt.Sprint(dead), Gone},
		{"bare pid, live", fmt.Sprint(live), Unknown},
		{"bare pid, ours", fmt.Sprint(self), Unknown},
	} {
		p, ok := ParseToken(c.tok)
		if !ok {
			t.Errorf("%s: %q does not parse", c.name, c.tok)
			continue
		}
		if got := p.State(); got != c.want {
			t.Errorf("%s: %q is %v, want %v", c.name, c.tok, got, c.want)
		}
	}
	for _, bad := range []string{"", "x", "0", "-1", "abc.1.2", h + ".0.1", h + ".1", h + ".1.x", h + ".1.2.3", "1.2.3"} {
		if _, ok := ParseToken(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
