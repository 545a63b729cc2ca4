//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"os"
)

// The sandbox is built from Linux namespaces; elsewhere Run and Available
// say so and Exec does nothing.

func available() error {
	return fmt.Errorf("%w: it needs Linux namespaces", ErrUnavailable)
}

func run(context.Context, *wireSpec) (*Result, error) { return nil, available() }

// Exec is the body of the hidden command ExecCommand; off Linux there is no
// sandbox to run.
func Exec([]string) int {
	fmt.Fprintln(os.Stderr, available())
	return 1
}
