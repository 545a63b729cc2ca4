package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

func wait(c *exec.Cmd) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Wait() }()
	return ch
}

// cmdTime runs a command as a whole process, several times, and prints the
// distribution of its wall time. Each run is timed from just before fork to
// just after wait with Go's monotonic clock, so the figure holds the cost of
// starting the process (as a JupyterHub hook pays it) and nothing of a shell.
func cmdTime(args []string) error {
	fs := flag.NewFlagSet("time", flag.ExitOnError)
	label := fs.String("label", "command", "name printed with the figures")
	argsFile := fs.String("argsfile", "", "one extra argument per line, one line per run (warm-up runs first)")
	runs := fs.Int("runs", 0, "timed runs (default: lines of -argsfile after the warm-up ones, else 50)")
	warmup := fs.Int("warmup", 3, "untimed runs first")
	setup := fs.String("setup", "", "shell command run (untimed) before every run")
	match := fs.String("match", "", "regexp every run's stdout must match")
	items := fs.Int("items", 0, "items one run handles: also print items/s")
	unit := fs.String("unit", "items", "name of the items")
	fs.Parse(args)
	cmdline := fs.Args()
	if len(cmdline) == 0 {
		return errors.New("no command given (put it after --)")
	}
	var lines []string
	if *argsFile != "" {
		b, err := os.ReadFile(*argsFile)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
		if *runs == 0 {
			*runs = len(lines) - *warmup
		}
		if *runs < 1 || len(lines) < *runs+*warmup {
			return fmt.Errorf("%s has %d lines; %d warm-up + %d runs need more", *argsFile, len(lines), *warmup, *runs)
		}
	} else if *runs == 0 {
		*runs = 50
	}
	var re *regexp.Regexp
	if *match != "" {
		var err error
		if re, err = regexp.Compile(*match); err != nil {
			return err
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var ds []time.Duration
	for i := range *warmup + *runs {
		if *setup != "" {
			c := exec.Command("sh", "-c", *setup)
			c.Stdout, c.Stderr = os.Stderr, os.Stderr
			if err := c.Run(); err != nil {
				return fmt.Errorf("setup %q: %w", *setup, err)
			}
		}
		argv := slices.Clone(cmdline)
		if lines != nil {
			argv = append(argv, lines[i])
		}
		var out, errb bytes.Buffer
		c := exec.Command(argv[0], argv[1:]...)
		c.Stdout, c.Stderr = &out, &errb
		t0 := time.Now()
		err := c.Start()
		if err == nil {
			select {
			case err = <-wait(c):
			case sig := <-sigs:
				// Interrupted (bench-cli.sh's trap): stop the run too.
				c.Process.Signal(sig)
				c.Wait()
				return fmt.Errorf("%s: interrupted by %v", *label, sig)
			}
		}
		d := time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s: %q: %w\nstdout: %s\nstderr: %s", *label, argv, err, out.String(), errb.String())
		}
		if re != nil && !re.Match(out.Bytes()) {
			return fmt.Errorf("%s: %q: stdout does not match %q:\n%s%s", *label, argv, *match, out.String(), errb.String())
		}
		if i >= *warmup {
			ds = append(ds, d)
		}
	}
	slices.Sort(ds)
	n := len(ds)
	median := ds[n/2]
	if n%2 == 0 {
		median = (ds[n/2-1] + ds[n/2]) / 2
	}
	p90 := ds[int(math.Ceil(0.9*float64(n)))-1]
	p99 := ds[int(math.Ceil(0.99*float64(n)))-1]
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	fmt.Printf("%-10s %3d runs  median %9s  p90 %9s  p99 %9s  min %9s  max %9s", *label, n, ms(median), ms(p90), ms(p99), ms(ds[0]), ms(ds[n-1]))
	if *items > 0 {
		fmt.Printf("  %d %s/run: %.0f %s/s at the median (best %.0f/s)", *items, *unit,
			float64(*items)/median.Seconds(), *unit, float64(*items)/ds[0].Seconds())
	}
	fmt.Println()
	return nil
}
