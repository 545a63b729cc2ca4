package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/owner"
)

func write(t *testing.T, dir, name, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func ls(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// recorder records contents; content "invalid" is a launch error, "down" a
// store outage.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) record(data []byte) error {
	switch s := string(data); s {
	case "invalid":
		return &launch.InvalidError{Msg: "bad launch"}
	case "down":
		return errors.New("store: attempt to write a readonly database")
	default:
		r.mu.Lock()
		r.got = append(r.got, s)
		r.mu.Unlock()
		return nil
	}
}

func TestIngestRecordsOldestFirstAndDeletes(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "20261125T100002.000000Z-bb.json", "two", 0o600)
	write(t, dir, "20261125T100001.000000Z-aa.json", "one", 0o600)
	write(t, dir, "20261125T100003.000000Z-cc.json", "three", 0o644) // readable by others: still ours
	write(t, dir, ".tmp-20261125T100004.000000Z-dd.json.part", "half", 0o600)
	write(t, dir, "notes.txt", "x", 0o600)
	var r recorder
	st, err := Ingest(context.Background(), dir, r.record)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.got, []string{"one", "two", "three"}) {
		t.Errorf("recorded %q", r.got)
	}
	if st.Ingested != 3 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{".tmp-20261125T100004.000000Z-dd.json.part", "notes.txt"}) {
		t.Errorf("left %q", got)
	}
}

func TestIngestMissingOrEmptyDir(t *testing.T) {
	var r recorder
	for _, dir := range []string{"", filepath.Join(t.TempDir(), "never-spooled"), t.TempDir()} {
		if st, err := Ingest(context.Background(), dir, r.record); err != nil || st.Ingested != 0 {
			t.Errorf("%q: %+v %v", dir, st, err)
		}
	}
}

func TestInvalidAndRefusedFilesGoToFailed(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "1-invalid.json", "invalid", 0o600)
	write(t, dir, "2-writable.json", "ok", 0o666)
	write(t, dir, "3-big.json", strings.Repeat("x", launch.MaxSize+1), 0o600)
	target := filepath.Join(t.TempDir(), "secret")
	write(t, filepath.Dir(target), "secret", "not yours", 0o600)
	if err := os.Symlink(target, filepath.Join(dir, "4-link.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "5-dir.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "6-good.json", "good", 0o600)
	// an earlier failure of the same name is kept
	os.Mkdir(filepath.Join(dir, FailedDir), 0o700)
	write(t, filepath.Join(dir, FailedDir), "1-invalid.json", "earlier", 0o600)

	var r recorder
	st, err := Ingest(context.Background(), dir, r.record)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ingested != 1 || st.Failed != 4 || len(st.Failures) != 4 || !slices.Equal(r.got, []string{"good"}) {
		t.Fatalf("stats %+v, recorded %q", st, r.got)
	}
	for _, f := range st.Failures {
		t.Logf("%s: %s", f.File, f.Error)
	}
	if !strings.Contains(st.Failures[0].Error, "bad launch") || !strings.Contains(st.Failures[1].Error, "mode 0666") ||
		!strings.Contains(st.Failures[2].Error, "larger") || !strings.Contains(st.Failures[3].Error, "symbolic link") {
		t.Errorf("failures %+v", st.Failures)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{"5-dir.json", FailedDir}) {
		t.Errorf("spool holds %q", got)
	}
	failed := ls(t, filepath.Join(dir, FailedDir))
	if len(failed) != 5 {
		t.Errorf("failed/ holds %q", failed)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, FailedDir, "1-invalid.json")); string(b) != "earlier" {
		t.Errorf("an earlier failed file was replaced: %q", b)
	}
	if b, _ := os.ReadFile(target); string(b) != "not yours" {
		t.Error("the symlink's target was touched")
	}
	if fi, _ := os.Stat(filepath.Join(dir, FailedDir)); fi.Mode().Perm() != 0o700 {
		t.Errorf("failed/ mode %v", fi.Mode().Perm())
	}
}

func TestTransientErrorPutsBackAndStops(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "1.json", "one", 0o600)
	write(t, dir, "2.json", "down", 0o600)
	write(t, dir, "3.json", "three", 0o600)
	var r recorder
	st, err := Ingest(context.Background(), dir, r.record)
	if err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Fatalf("err %v", err)
	}
	if st.Ingested != 1 || !slices.Equal(r.got, []string{"one"}) {
		t.Errorf("stats %+v, recorded %q", st, r.got)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{"2.json", "3.json"}) {
		t.Errorf("spool holds %q", got)
	}
}

func TestBatchCommitsOncePerBatch(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		write(t, dir, fmt.Sprintf("%d.json", i), fmt.Sprint(i), 0o600)
	}
	write(t, dir, "2a.json", "invalid", 0o600)
	var staged, committed []string
	var commits int
	fail := false
	b := Batch{Size: 2,
		Add: func(data []byte) error {
			if string(data) == "invalid" {
				return &launch.InvalidError{Msg: "bad"}
			}
			staged = append(staged, string(data))
			return nil
		},
		Commit: func() error {
			defer func() { staged = nil }()
			if fail {
				return errors.New("store down")
			}
			commits++
			committed = append(committed, staged...)
			return nil
		},
	}
	st, err := IngestBatch(context.Background(), dir, b)
	if err != nil {
		t.Fatal(err)
	}
	if commits != 3 || st.Ingested != 5 || st.Failed != 1 || !slices.Equal(committed, []string{"0", "1", "2", "3", "4"}) {
		t.Errorf("commits %d, stats %+v, committed %q", commits, st, committed)
	}
	// a failed commit puts the whole batch back
	write(t, dir, "7.json", "7", 0o600)
	write(t, dir, "8.json", "8", 0o600)
	fail = true
	if _, err := IngestBatch(context.Background(), dir, b); err == nil {
		t.Fatal("commit error not returned")
	}
	if got := ls(t, dir); !slices.Equal(got, []string{"7.json", "8.json", FailedDir}) {
		t.Errorf("spool holds %q", got)
	}
}

func TestCancelPutsBack(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "1.json", "one", 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var r recorder
	if _, err := Ingest(ctx, dir, r.record); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{"1.json"}) {
		t.Errorf("spool holds %q", got)
	}
}

func TestDeadClaimsAreTakenOverLiveOnesNot(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	dir := t.TempDir()
	write(t, dir, fmt.Sprintf(".ingesting-%d-0badf00d-20261125T100000.000000Z-aa.json", dead), "dead's", 0o600)
	write(t, dir, ".ingesting-1-0badf00d-20261125T100000.000000Z-bb.json", "init's", 0o600)
	write(t, dir, fmt.Sprintf(".ingesting-%d-0badf00d-20261125T100000.000000Z-cc.json", os.Getpid()), "ours", 0o600)
	write(t, dir, ".ingesting-junk.json", "junk", 0o600)
	var r recorder
	st, err := Ingest(context.Background(), dir, r.record)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ingested != 1 || !slices.Equal(r.got, []string{"dead's"}) {
		t.Errorf("stats %+v, recorded %q", st, r.got)
	}
	if len(ls(t, dir)) != 3 {
		t.Errorf("spool holds %q", ls(t, dir))
	}
	// a dead claim put back after an outage gets its original name
	write(t, dir, fmt.Sprintf(".ingesting-%d-0badf00d-20261125T100001.000000Z-dd.json", dead), "down", 0o600)
	if _, err := Ingest(context.Background(), dir, r.record); err == nil {
		t.Fatal("outage not reported")
	}
	if _, err := os.Stat(filepath.Join(dir, "20261125T100001.000000Z-dd.json")); err != nil {
		t.Errorf("not put back under its original name: %q", ls(t, dir))
	}
}

// Concurrent ingesters record every file exactly once.
func TestConcurrentIngestersNeverShareAFile(t *testing.T) {
	dir := t.TempDir()
	const n = 300
	for i := range n {
		write(t, dir, fmt.Sprintf("%04d.json", i), fmt.Sprint(i), 0o600)
	}
	var r recorder
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := Ingest(context.Background(), dir, r.record)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += st.Ingested
			mu.Unlock()
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, g := range r.got {
		if seen[g] {
			t.Errorf("%s recorded twice", g)
		}
		seen[g] = true
	}
	if len(seen) != n || total != n {
		t.Errorf("recorded %d distinct, stats say %d, want %d", len(seen), total, n)
	}
	if got := ls(t, dir); len(got) != 0 {
		t.Errorf("left %q", got)
	}
}

// Files of another user are left for their owner, counted as skipped.
func TestForeignFilesAreLeftAlone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file away")
	}
	dir := t.TempDir()
	write(t, dir, "1.json", "planted", 0o600)
	if err := os.Chown(filepath.Join(dir, "1.json"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "2.json", "ours", 0o600)
	var r recorder
	st, err := Ingest(context.Background(), dir, r.record)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ingested != 1 || st.Skipped != 1 || st.Failed != 0 || !slices.Equal(r.got, []string{"ours"}) {
		t.Errorf("stats %+v, recorded %q", st, r.got)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{"1.json"}) {
		t.Errorf("spool holds %q", got)
	}
}

// Claims name their process by pid space, pid and start time (package
// owner): a claim whose pid now belongs to another process is taken over,
// one of this very process is not.
func TestReusedPidClaimsAreTakenOver(t *testing.T) {
	child := exec.Command("sleep", "300")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	tok := owner.Token()
	scope, _, _ := strings.Cut(tok, ".")
	other := "0badf00d"
	if scope == other {
		other = "0badf00e"
	}
	dir := t.TempDir()
	// A start time of one clock tick after boot: not the one of the
	// process that has this pid now.
	write(t, dir, fmt.Sprintf(".ingesting-%s.%d.1-0badf00d-20261125T100000.000000Z-aa.json", scope, os.Getpid()), "our pid, reused", 0o600)
	write(t, dir, fmt.Sprintf(".ingesting-%s.%d.1-0badf00d-20261125T100001.000000Z-bb.json", scope, child.Process.Pid), "live pid, reused", 0o600)
	write(t, dir, ".ingesting-"+tok+"-0badf00d-20261125T100002.000000Z-cc.json", "ours", 0o600)
	write(t, dir, fmt.Sprintf(".ingesting-%s.%d.1-0badf00d-20261125T100003.000000Z-dd.json", other, child.Process.Pid), "another container's", 0o600)
	var r recorder
	st, err := Ingest(context.Background(), dir, r.record)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ingested != 2 || !slices.Equal(r.got, []string{"our pid, reused", "live pid, reused"}) {
		t.Errorf("stats %+v, recorded %q", st, r.got)
	}
	if got := ls(t, dir); len(got) != 2 {
		t.Errorf("spool holds %q", got)
	}
}

// A claim that cannot be checked from here (another host, boot or pid
// namespace, or an older binary's bare pid that is in use) is taken over
// once it is older than any ingestion runs: a launch recorded twice is
// better than one never recorded.
func TestUncheckableClaimsAreTakenOverWhenStale(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".ingesting-0badf00d.1.1-0badf00d-20261125T100000.000000Z-aa.json", "another container's", 0o600)
	write(t, dir, ".ingesting-1-0badf00d-20261125T100001.000000Z-bb.json", "init's", 0o600)
	write(t, dir, ".ingesting-"+owner.Token()+"-0badf00d-20261125T100002.000000Z-cc.json", "ours", 0o600)
	var r recorder
	if st, err := Ingest(context.Background(), dir, r.record); err != nil || st.Ingested != 0 {
		t.Fatalf("fresh claims taken over: %+v %v", st, err)
	}
	t.Cleanup(func() { now = time.Now })
	now = func() time.Time { return time.Now().Add(staleClaim + time.Minute) }
	st, err := Ingest(context.Background(), dir, r.record)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ingested != 2 || !slices.Equal(r.got, []string{"another container's", "init's"}) {
		t.Errorf("stats %+v, recorded %q", st, r.got)
	}
}

// The files this process claims carry its identity.
func TestClaimsCarryTheOwnerToken(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "20261125T100000.000000Z-aa.json", "one", 0o600)
	var names []string
	_, err := Ingest(context.Background(), dir, func([]byte) error {
		names = ls(t, dir)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^\.ingesting-` + regexp.QuoteMeta(owner.Token()) + `-[0-9a-f]{8}-20261125T100000\.000000Z-aa\.json$`)
	if len(names) != 1 || !want.MatchString(names[0]) {
		t.Errorf("claimed as %q, want %s", names, want)
	}
}

// An ingester that is not root takes the launches root (the hub) spooled
// into a spool folder open to its group, but leaves root's private files
// and other users' files alone.
func TestRootsReadableFilesAreIngestedByOthers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to own files of root and of another user")
	}
	t.Cleanup(func() { geteuid = os.Geteuid })
	geteuid = func() int { return 12345 } // a grader
	dir := t.TempDir()
	write(t, dir, "1.json", "root's, group-readable", 0o640)
	write(t, dir, "2.json", "root's, private", 0o600)
	write(t, dir, "3.json", "nobody's", 0o644)
	if err := os.Chown(filepath.Join(dir, "3.json"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "4.json", "root's, group-writable", 0o660)
	var r recorder
	st, err := Ingest(context.Background(), dir, r.record)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ingested != 1 || st.Skipped != 2 || st.Failed != 1 || !slices.Equal(r.got, []string{"root's, group-readable"}) {
		t.Errorf("stats %+v, recorded %q", st, r.got)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{"2.json", "3.json", FailedDir}) {
		t.Errorf("spool holds %q", got)
	}
}

// In a spool folder shared by a group (setgid, group rwx), failed/ is
// shared the same way whatever the umask: the next member's ingestion must
// be able to move its invalid launches there too.
func TestFailedFolderFollowsASharedSpool(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o770|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })
	write(t, dir, "1.json", "invalid", 0o600)
	var r recorder
	if st, err := Ingest(context.Background(), dir, r.record); err != nil || st.Failed != 1 {
		t.Fatalf("%+v %v", st, err)
	}
	fi, err := os.Stat(filepath.Join(dir, FailedDir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o770 || fi.Mode()&os.ModeSetgid == 0 {
		t.Errorf("failed/ mode %v, want group rwx and setgid like the spool", fi.Mode())
	}
}
