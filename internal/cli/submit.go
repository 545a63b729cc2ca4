package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ltigrade/ltigrade/internal/config"
	"github.com/ltigrade/ltigrade/internal/grade"
	"github.com/ltigrade/ltigrade/internal/remote"
	"github.com/ltigrade/ltigrade/internal/termsafe"
)

// maxSubmit bounds what submit reads; the service has its own, usually
// smaller, limit ([submit] max_size_mb).
const maxSubmit = 64 << 20

func newSubmitCmd(app *App) *cobra.Command {
	var wait, asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "submit NOTEBOOK",
		Short: "Submit your notebook for grading on the server; the score goes to your LMS column",
		Long: `Submit NOTEBOOK, run inside your own JupyterHub server, to the grading service
(` + "$" + config.EnvServer + `, set by the hub), which autogrades it in a sandbox with the
course's grader and sends the score to the LMS assignment the notebook belongs to.

Only a notebook that one of your own launches covers can be submitted (the rule of
ltigrade resolve); the answer names the assignment it counts for, or says why none.
The notebook's path is taken inside your notebook root ($JUPYTER_SERVER_ROOT, else
$HOME). With --wait it waits until the score is delivered or the grading failed.

Exit codes: 0 submitted (with --wait: delivered), 3 no launch of yours covers it or its
assignment has no grader, 4 ambiguous, 5 (with --wait) graded but not delivered yet, or
the queue is full, 6 (with --wait) the grader or the LMS refused it, 7 not allowed (no
token, another user's notebook, too soon after the last submission), 2 invalid input.`,
		Example: `  ltigrade submit hw1.ipynb
  ltigrade submit ~/course/hw1/hw1.ipynb --wait --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			srv := app.Server()
			if srv == "" {
				return withCode(ExitUsage, errors.New("submit goes through the grading service, and $"+config.EnvServer+" is not set"),
					"inside a hub server the hub sets it when the service is installed (ltigrade hub install --service); else pass --server URL")
			}
			token := firstNonEmpty(app.Getenv(config.EnvToken), app.Getenv("JUPYTERHUB_API_TOKEN"))
			c, err := remote.New(srv, token)
			if err != nil {
				return err
			}
			rel, err := pathInRoot(app, a[0])
			if err != nil {
				return err
			}
			data, err := readLimited(a[0], maxSubmit)
			if err != nil {
				return err
			}
			v, err := c.Submit(app.Context(), grade.SubmitRequest{Path: rel, Notebook: data})
			if err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(app.Out, "submitted %s for %q (submission %d): %s\n", termsafe.Field(v.Path), termsafe.Field(v.Assignment), v.ID, v.State)
			}
			if !wait {
				if asJSON {
					return printJSON(app.Out, v)
				}
				return nil
			}
			deadline := time.Now().Add(timeout)
			last := v.State
			for !v.Final() && time.Now().Before(deadline) {
				select {
				case <-app.Context().Done():
					return app.Context().Err()
				case <-time.After(time.Second):
				}
				if v, err = c.Submission(app.Context(), v.ID); err != nil {
					return err
				}
				if !asJSON && v.State != last {
					last = v.State
					fmt.Fprintf(app.Err, "%s\n", v.State)
				}
			}
			if asJSON {
				if err := printJSON(app.Out, v); err != nil {
					return err
				}
				return exitWith(v.Code())
			}
			switch v.State {
			case "failed":
				fmt.Fprintf(app.Out, "grading failed: %s\n", termsafe.Field(v.Reason))
				if v.Output != "" {
					fmt.Fprintf(app.Out, "%s\n", termsafe.Lines(v.Output))
				}
			case "delivered", "graded":
				score := ""
				if v.Score != nil && v.OutOf != nil {
					score = fmtFloat(*v.Score) + "/" + fmtFloat(*v.OutOf)
				}
				how := "delivered to the LMS"
				if v.State == "graded" {
					how = "score journaled, not delivered yet (" + v.Delivery + ")"
				}
				fmt.Fprintf(app.Out, "graded %s for %q: %s\n", score, termsafe.Field(v.Assignment), how)
			default:
				fmt.Fprintf(app.Out, "still %s after %s; check later with the status page\n", v.State, timeout)
			}
			return exitWith(v.Code())
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the score is delivered or the grading failed")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "with --wait: how long to wait at most")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the submission as JSON")
	return cmd
}

// pathInRoot is the notebook's path inside the user's notebook root: the
// server's root ($JUPYTER_SERVER_ROOT), else $HOME.
func pathInRoot(app *App, nb string) (string, error) {
	root := firstNonEmpty(app.Getenv("JUPYTER_SERVER_ROOT"), app.Getenv("HOME"))
	if root == "" {
		return "", usageErr("neither $JUPYTER_SERVER_ROOT nor $HOME is set: cannot tell where your notebook root is")
	}
	abs, err := filepath.Abs(nb)
	if err != nil {
		return "", err
	}
	root, _ = filepath.Abs(root)
	rel, err := filepath.Rel(root, abs)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", withCode(ExitNotAllowed, fmt.Errorf("%s is not inside your notebook root %s: only your own notebooks can be submitted", nb, root), "")
	}
	return filepath.ToSlash(rel), nil
}

func readLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, usageErr("read %s: %v", name, err)
	}
	if int64(len(data)) > limit {
		return nil, usageErr("%s is larger than %d MiB", name, limit>>20)
	}
	return data, nil
}
