// Command mutants checks that the tests kill the deliberate bugs issue 11
// named as survivors of an earlier mutation run: each mutant is applied to a
// fresh copy of the committed tree (git archive HEAD), the tests that guard
// it run there, and the mutant must make them fail. It is a development
// tool, not part of ltigrade; `make mutants` runs it.
//
// Exit status: 0 when every mutant is killed, 1 when one survives or cannot
// be applied (its code moved: update the mutant, not the tests).
//
// The PostgreSQL mutants run only when LTIGRADE_PG_ENV_FILE names a running
// throwaway cluster (scripts/postgres-env.sh); otherwise they are reported
// as not run.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

type mutant struct {
	name, file, old, new string
	// more edits of the same file, for a defence that has two layers
	also [][2]string
	pkgs []string
	pg   bool // needs PostgreSQL
}

var mutants = []mutant{
	{
		name: "claim may pick an older row while a newer unsent one exists (newest-row guard removed)",
		file: "internal/store/outbox.go",
		old:  "\tAND p.id = (SELECT MAX(q.id) FROM passbacks q WHERE q.session_id = p.session_id)\n\tAND NOT EXISTS",
		new:  "\tAND NOT EXISTS",
		pkgs: []string{"./internal/store/"},
	},
	{
		name: "claim by id of a row another live owner holds under its lease",
		file: "internal/store/outbox.go",
		old:  "const claimable = `(p.status IN ('pending','retry') OR (p.status = 'sending' AND p.lease_until < :now))",
		new:  "const claimable = `(p.status IN ('pending','retry','sending'))",
		pkgs: []string{"./internal/store/"},
	},
	{
		name: "Enqueue does not supersede the session's older unsent rows",
		file: "internal/store/outbox.go",
		old:  "if _, err := supersede.ExecContext(ctx, now, now, p.SessionID); err != nil {",
		new:  "if _, err := tx.ExecContext(ctx, `SELECT ?, ?, ?`, now, now, p.SessionID); err != nil {",
		pkgs: []string{"./internal/store/"},
	},
	{
		name: "an attempt that outlives the engine's timeout is counted as sent",
		file: "internal/passback/passback.go",
		old:  "\tctx, cancel := context.WithTimeout(ctx, e.Timeout)\n\tdefer cancel()\n\tdefer func() {",
		new:  "\tdefer func() {",
		pkgs: []string{"./internal/passback/"},
	},
	{
		// PostgreSQL's take supersedes the claimed sessions' older rows
		// before it leases, so the guard in pgClaimable alone is a
		// backstop: removing only it is an equivalent mutant. Both go.
		name: "PostgreSQL: claim may pick an older row (newest-row guard and the take's supersede removed)",
		file: "internal/store/postgres_outbox.go",
		old:  "\tAND p.id = (SELECT MAX(q.id) FROM passbacks q WHERE q.session_id = p.session_id)\n\tAND NOT EXISTS",
		new:  "\tAND NOT EXISTS",
		also: [][2]string{{"\t\tAND p.session_id IN (SELECT session_id FROM passbacks WHERE id = ANY(@ids))`, args)",
			"\t\tAND false AND p.session_id IN (SELECT session_id FROM passbacks WHERE id = ANY(@ids))`, args)"}},
		pkgs: []string{"./internal/store/"},
		pg:   true,
	},
	{
		name: "PostgreSQL: claim by id of a row another live owner holds",
		file: "internal/store/postgres_outbox.go",
		old:  "const pgClaimable = `(p.status IN ('pending','retry') OR (p.status = 'sending' AND p.lease_until < NOW))",
		new:  "const pgClaimable = `(p.status IN ('pending','retry','sending'))",
		pkgs: []string{"./internal/store/"},
		pg:   true,
	},
}

func main() {
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		fail("not in a git checkout: %v", err)
	}
	repo := strings.TrimSpace(string(root))
	pgEnv := os.Getenv("LTIGRADE_PG_ENV_FILE")
	failed := 0
	for _, m := range mutants {
		if m.pg && pgEnv == "" {
			fmt.Printf("NOT RUN   %s (no LTIGRADE_PG_ENV_FILE)\n", m.name)
			continue
		}
		verdict, detail := run(repo, m)
		fmt.Printf("%-9s %s\n", verdict, m.name)
		if detail != "" {
			fmt.Print(detail)
		}
		if verdict != "KILLED" {
			failed++
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func run(repo string, m mutant) (string, string) {
	dir, err := os.MkdirTemp("", "ltigrade-mutant-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(dir)
	// A copy of the committed tree: the working tree is never touched, so
	// an interrupted run leaves no mutant behind.
	archive := exec.Command("sh", "-c", "git archive HEAD | tar -x -C "+dir)
	archive.Dir = repo
	if out, err := archive.CombinedOutput(); err != nil {
		fail("git archive: %v\n%s", err, out)
	}
	path := filepath.Join(dir, m.file)
	src, err := os.ReadFile(path)
	if err != nil {
		return "MISSING", fmt.Sprintf("          %v\n", err)
	}
	for _, e := range append([][2]string{{m.old, m.new}}, m.also...) {
		if n := bytes.Count(src, []byte(e[0])); n != 1 {
			return "MISSING", fmt.Sprintf("          the code to mutate occurs %d times in %s\n", n, m.file)
		}
		src = bytes.Replace(src, []byte(e[0]), []byte(e[1]), 1)
	}
	if err := os.WriteFile(path, src, 0o644); err != nil {
		fail("%v", err)
	}
	cmd := exec.Command("go", append([]string{"test", "-count=1"}, m.pkgs...)...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err == nil {
		return "SURVIVED", ""
	}
	var killers []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "--- FAIL") {
			killers = append(killers, line)
		}
	}
	if len(killers) == 0 {
		// Failed without a failing test: a build error is no kill.
		return "BROKEN", indent(string(out))
	}
	return "KILLED", "          by " + killers[len(killers)-1] + "\n"
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		b.WriteString("          " + l + "\n")
	}
	return b.String()
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "mutants: "+format+"\n", a...)
	os.Exit(1)
}
