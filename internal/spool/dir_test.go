package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSpoolDirWritableByOthers: anyone who can write the spool directory
// can add, rename or remove the hook's launches, so such a spool is refused
// and nothing in it is ingested. A group-writable one is accepted: the
// documented grader-group setup (chgrp -R, chmod g+rwX) makes it so, and
// files of other users are skipped anyway.
func TestSpoolDirWritableByOthers(t *testing.T) {
	for _, tc := range []struct {
		mode    os.FileMode
		refused bool
	}{{0o700, false}, {0o770, false}, {0o2770, false}, {0o702, true}, {0o777, true}, {0o1777, true}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			write(t, dir, "20261125T100000.000000Z-aaaa.json", "a", 0o600)
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			r := &recorder{}
			st, err := Ingest(context.Background(), dir, r.record)
			if !tc.refused {
				if err != nil || st.Ingested != 1 {
					t.Fatalf("Ingest = %+v, %v", st, err)
				}
				return
			}
			var ue *UnsafeDirError
			if !errors.As(err, &ue) || ue.Dir != dir || ue.Mode != tc.mode.Perm() {
				t.Fatalf("err = %#v, want an *UnsafeDirError", err)
			}
			if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "writable by others") {
				t.Errorf("err = %q, want the directory and why", msg)
			}
			if h := ue.Hint(); h != "chmod o-w "+dir {
				t.Errorf("hint = %q", h)
			}
			if len(r.got) != 0 || len(ls(t, dir)) != 1 {
				t.Errorf("ingested %q from a refused spool; left %q", r.got, ls(t, dir))
			}
		})
	}
	// A spool that does not exist yet is empty, not an error.
	if _, err := Ingest(context.Background(), filepath.Join(t.TempDir(), "none"), (&recorder{}).record); err != nil {
		t.Errorf("missing spool: %v", err)
	}
}
