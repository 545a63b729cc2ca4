package cli

import (
	"bytes"
	"github.com/ltigrade/ltigrade/internal/grade"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func testApp() (*App, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &App{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: func(string) string { return "" }, Now: time.Now}, &out, &errb
}

func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, s := range c.Commands() {
		walk(s, f)
	}
}

// Every command's --help must parse (a flag clash panics here) and every
// runnable command must carry an example.
func TestEveryCommandHelp(t *testing.T) {
	app, _, _ := testApp()
	walk(NewRoot(app), func(c *cobra.Command) {
		path := strings.Fields(c.CommandPath())[1:]
		a, out, errb := testApp()
		if code := Run(a, append(path, "--help")); code != 0 {
			t.Errorf("%s --help: exit %d: %s", c.CommandPath(), code, errb)
		}
		if !strings.Contains(out.String(), "Usage:") && c.Runnable() {
			t.Errorf("%s --help printed no usage", c.CommandPath())
		}
		if c.Runnable() && !c.Hidden && c.Name() != "help" && c.Name() != "completion" && c.Example == "" && len(c.Commands()) == 0 {
			t.Errorf("%s has no example", c.CommandPath())
		}
		if c.Flags().Lookup("json") == nil && c.Runnable() && (c.Name() == "list" || c.Name() == "show") {
			t.Errorf("%s prints data but has no --json", c.CommandPath())
		}
		// pflag shows backquoted text in a usage as the flag's value name
		// ("--launch sessions list --all"), so usages must not quote that way.
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				name, _ := pflag.UnquoteUsage(f)
				t.Errorf("%s --%s: backquotes in the usage make %q its value name", c.CommandPath(), f.Name, name)
			}
		})
	})
}

// The committed docs and completions must match the command tree.
func TestGeneratedDocsUpToDate(t *testing.T) {
	tmp := t.TempDir()
	if err := Generate(filepath.Join(tmp, "docs"), filepath.Join(tmp, "completions")); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join("..", "..")
	for _, dir := range []string{"docs/reference", "docs/man", "completions"} {
		gen, _ := filepath.Glob(filepath.Join(tmp, dir, "*"))
		if len(gen) == 0 {
			t.Fatalf("nothing generated in %s", dir)
		}
		for _, g := range gen {
			want, _ := os.ReadFile(g)
			have, err := os.ReadFile(filepath.Join(repo, dir, filepath.Base(g)))
			if err != nil || !bytes.Equal(want, have) {
				t.Errorf("%s/%s is stale or missing: run `make gen` and commit", dir, filepath.Base(g))
			}
		}
		committed, _ := filepath.Glob(filepath.Join(repo, dir, "*"))
		if len(committed) != len(gen) {
			t.Errorf("%s has %d files, the generator makes %d: run `make gen` (and remove stale files)", dir, len(committed), len(gen))
		}
	}
}

func TestExitCodeTableMatchesConstants(t *testing.T) {
	for i, e := range grade.ExitCodes {
		if e.Code != i {
			t.Fatalf("exit code table out of order at %d", i)
		}
	}
	if len(grade.ExitCodes) != ExitCheckFailed+1 {
		t.Fatal("exit code table incomplete")
	}
}
