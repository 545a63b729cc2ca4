package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenCmd writes the generated docs and completions committed in the
// repository. Output is deterministic (fixed date, no "auto generated" tag)
// so a test can fail when the committed copies are stale.
func newGenCmd(app *App) *cobra.Command {
	var docsDir, complDir string
	cmd := &cobra.Command{
		Use:    "gen",
		Short:  "Generate the reference docs, man pages and shell completions",
		Hidden: true,
		Args:   args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return Generate(docsDir, complDir)
		},
	}
	cmd.Flags().StringVar(&docsDir, "docs", "docs", "docs directory (reference/ and man/ go inside)")
	cmd.Flags().StringVar(&complDir, "completions", "completions", "completions directory")
	return cmd
}

// Generate writes docs/reference (markdown), docs/man and completions.
func Generate(docsDir, complDir string) error {
	root := NewRoot(&App{Out: os.Stdout, Err: os.Stderr, Getenv: func(string) string { return "" }, Now: time.Now})
	root.DisableAutoGenTag = true
	ref := filepath.Join(docsDir, "reference")
	man := filepath.Join(docsDir, "man")
	for _, d := range []string{ref, man, complDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := doc.GenMarkdownTree(root, ref); err != nil {
		return err
	}
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := doc.GenManTree(root, &doc.GenManHeader{Title: "LTIGRADE", Section: "1", Date: &date, Source: "ltigrade"}, man); err != nil {
		return err
	}
	gens := map[string]func(string) error{
		"ltigrade.bash": func(p string) error { return root.GenBashCompletionFileV2(p, true) },
		"ltigrade.zsh":  root.GenZshCompletionFile,
		"ltigrade.fish": func(p string) error { return root.GenFishCompletionFile(p, true) },
		"ltigrade.ps1":  root.GenPowerShellCompletionFileWithDesc,
	}
	for name, gen := range gens {
		if err := gen(filepath.Join(complDir, name)); err != nil {
			return fmt.Errorf("completion %s: %w", name, err)
		}
	}
	return nil
}
