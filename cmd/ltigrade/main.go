// Command ltigrade sends Jupyter notebook grades back to the LMS that
// launched them. All of it lives in internal/; this only sets the exit code.
package main

import (
	"os"

	"github.com/ltigrade/ltigrade/internal/cli"
)

func main() { os.Exit(cli.Main()) }
