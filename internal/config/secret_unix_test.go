//go:build unix

package config

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestSecretFileFIFO checks that a FIFO is refused at once: opening one for
// reading would otherwise block until some process writes to it.
func TestSecretFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := consumerWithFile(t, fifo)
	want := `config: consumer "k": secret file ` + fifo + ` is not a regular file (p---------)`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}
