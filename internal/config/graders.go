package config

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Grader is one [[graders]] entry: how the grading service autogrades a
// submitted notebook of one assignment (issue 10).
type Grader struct {
	// Course and Assignment pick the launches it grades: Course matches a
	// launch's context id, label or title; Assignment its resource link id
	// or title. Notebooks, instead or as well, is a path pattern (path.Match
	// syntax, inside the student's root) the submitted path must match.
	Course, Assignment, Notebooks string
	// Kind is otter, nbgrader or command.
	Kind string
	// Autograder is otter's autograder zip, or nbgrader's course folder
	// (holding source/<assignment>/); for command, passed as {autograder}.
	Autograder string
	// NbgraderAssignment is the nbgrader assignment name (default: the
	// folder of the notebook in source/).
	NbgraderAssignment string
	// Command is the argv of kind command; {notebook}, {dir} and
	// {autograder} are replaced. It prints {"score": x, "out_of": y} as its
	// last line.
	Command []string
	// Python is the interpreter that has otter or nbgrader installed.
	Python string
	// Timeout bounds one grading (wall time).
	Timeout time.Duration
}

// Submit holds the [submit] limits of server-side grading.
type Submit struct {
	MaxBytes    int64         // largest notebook accepted
	Workers     int           // gradings at once
	Queue       int           // submissions waiting at most
	Interval    time.Duration // per student: at least this long between submissions
	SandboxUser string        // the unprivileged user the graders run as
	MemoryMB    int64
	DiskMB      int64
	Processes   int
	CPU         time.Duration
	OutputKB    int64 // grader output kept (the tail)
}

// DefaultSubmit are the [submit] defaults.
var DefaultSubmit = Submit{MaxBytes: 10 << 20, Workers: 2, Queue: 200, Interval: 10 * time.Second,
	SandboxUser: "ltigrade-sandbox", MemoryMB: 2048, DiskMB: 256, Processes: 128, CPU: 5 * time.Minute, OutputKB: 64}

type rawGrader struct {
	Course             *string  `toml:"course"`
	Assignment         *string  `toml:"assignment"`
	Notebooks          *string  `toml:"notebooks"`
	Kind               *string  `toml:"kind"`
	Autograder         *string  `toml:"autograder"`
	NbgraderAssignment *string  `toml:"nbgrader_assignment"`
	Command            []string `toml:"command"`
	Python             *string  `toml:"python"`
	Timeout            *string  `toml:"timeout"`
}

type rawSubmit struct {
	MaxSizeMB   *int64  `toml:"max_size_mb"`
	Workers     *int    `toml:"workers"`
	Queue       *int    `toml:"queue"`
	Interval    *string `toml:"interval"`
	SandboxUser *string `toml:"sandbox_user"`
	MemoryMB    *int64  `toml:"memory_mb"`
	DiskMB      *int64  `toml:"disk_mb"`
	Processes   *int    `toml:"processes"`
	CPU         *string `toml:"cpu"`
	OutputKB    *int64  `toml:"output_kb"`
}

func (c *Config) resolveGraders(raw *rawFile, src string) error {
	for i, r := range raw.Graders {
		pre := fmt.Sprintf("graders[%d]", i)
		g := Grader{Course: deref(r.Course), Assignment: deref(r.Assignment), Notebooks: deref(r.Notebooks),
			Kind: deref(r.Kind), Autograder: deref(r.Autograder), NbgraderAssignment: deref(r.NbgraderAssignment),
			Command: r.Command, Python: deref(r.Python), Timeout: 5 * time.Minute}
		switch g.Kind {
		case "otter", "nbgrader":
			if g.Autograder == "" {
				return errorf("%s: %s: kind %q needs autograder (otter's zip, or nbgrader's course folder)", src, pre, g.Kind)
			}
		case "command":
			if len(g.Command) == 0 {
				return errorf("%s: %s: kind \"command\" needs command = [\"program\", \"{notebook}\", ...]", src, pre)
			}
		default:
			return errorf("%s: %s: kind %q: want otter, nbgrader or command", src, pre, g.Kind)
		}
		if g.Autograder != "" && !filepath.IsAbs(g.Autograder) {
			return errorf("%s: %s: autograder %q must be an absolute path", src, pre, g.Autograder)
		}
		if g.Course == "" && g.Assignment == "" && g.Notebooks == "" {
			return errorf("%s: %s: name the course and assignment it grades, or a notebooks pattern", src, pre)
		}
		if g.Notebooks != "" {
			if _, err := path.Match(g.Notebooks, ""); err != nil || strings.HasPrefix(g.Notebooks, "/") {
				return errorf("%s: %s: notebooks %q: want a relative path pattern such as \"course/hw1/*.ipynb\"", src, pre, g.Notebooks)
			}
		}
		if r.Timeout != nil {
			d, err := time.ParseDuration(*r.Timeout)
			if err != nil || d <= 0 || d > 2*time.Hour {
				return errorf("%s: %s: timeout %q: want a duration such as \"5m\" (at most 2h)", src, pre, *r.Timeout)
			}
			g.Timeout = d
		}
		c.Graders = append(c.Graders, g)
		c.record(pre+".kind", g.Kind, OriginFile, src)
		c.record(pre+".course", g.Course, OriginFile, src)
		c.record(pre+".assignment", g.Assignment, OriginFile, src)
		c.record(pre+".autograder", g.Autograder, OriginFile, src)
	}
	s := DefaultSubmit
	r := raw.Submit
	positive := func(key string, v *int64, dst *int64, scale int64) error {
		if v == nil {
			c.record("submit."+key, fmt.Sprint(*dst/scale), OriginDefault, "")
			return nil
		}
		if *v <= 0 {
			return errorf("%s: submit.%s %d must be positive", src, key, *v)
		}
		*dst = *v * scale
		c.record("submit."+key, fmt.Sprint(*v), OriginFile, src)
		return nil
	}
	if err := positive("max_size_mb", r.MaxSizeMB, &s.MaxBytes, 1<<20); err != nil {
		return err
	}
	if err := positive("memory_mb", r.MemoryMB, &s.MemoryMB, 1); err != nil {
		return err
	}
	if err := positive("disk_mb", r.DiskMB, &s.DiskMB, 1); err != nil {
		return err
	}
	if err := positive("output_kb", r.OutputKB, &s.OutputKB, 1); err != nil {
		return err
	}
	for _, p := range []struct {
		key string
		v   *int
		dst *int
		max int
	}{{"workers", r.Workers, &s.Workers, 64}, {"queue", r.Queue, &s.Queue, 100000}, {"processes", r.Processes, &s.Processes, 100000}} {
		if p.v == nil {
			c.record("submit."+p.key, fmt.Sprint(*p.dst), OriginDefault, "")
			continue
		}
		if *p.v < 1 || *p.v > p.max {
			return errorf("%s: submit.%s %d: want 1..%d", src, p.key, *p.v, p.max)
		}
		*p.dst = *p.v
		c.record("submit."+p.key, fmt.Sprint(*p.v), OriginFile, src)
	}
	for _, p := range []struct {
		key string
		v   *string
		dst *time.Duration
	}{{"interval", r.Interval, &s.Interval}, {"cpu", r.CPU, &s.CPU}} {
		if p.v == nil {
			c.record("submit."+p.key, p.dst.String(), OriginDefault, "")
			continue
		}
		d, err := time.ParseDuration(*p.v)
		if err != nil || d < 0 {
			return errorf("%s: submit.%s %q is not a duration such as \"30s\"", src, p.key, *p.v)
		}
		*p.dst = d
		c.record("submit."+p.key, *p.v, OriginFile, src)
	}
	if r.SandboxUser != nil {
		if *r.SandboxUser == "" || *r.SandboxUser == "root" {
			return errorf("%s: submit.sandbox_user %q: want a dedicated unprivileged user", src, *r.SandboxUser)
		}
		s.SandboxUser = *r.SandboxUser
		c.record("submit.sandbox_user", s.SandboxUser, OriginFile, src)
	} else {
		c.record("submit.sandbox_user", s.SandboxUser, OriginDefault, "")
	}
	c.Submit = s
	return nil
}
