package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ltigrade/ltigrade/internal/launch"
	"github.com/ltigrade/ltigrade/internal/store"
)

// cmdPhases splits what a one-shot `ltigrade record` spends in the store
// into opening it (connection, authentication, the schema-version query)
// and the record itself: for each launch file of -argsfile it opens the
// store as the command does (store.FewQueries), records the launch and
// closes it, in this one process, so process start-up is left out.
func cmdPhases(args []string) error {
	fs := flag.NewFlagSet("phases", flag.ExitOnError)
	db := fs.String("db", "", "database (a postgres:// URL or a SQLite path)")
	argsFile := fs.String("argsfile", "", "launch files, one per line")
	pwFile := fs.String("password-file", "", "PostgreSQL password file")
	label := fs.String("label", "phases", "label of the output line")
	fs.Parse(args)
	if *db == "" || *argsFile == "" {
		return errors.New("-db and -argsfile are required")
	}
	var opts []store.Option
	opts = append(opts, store.FewQueries())
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return err
		}
		opts = append(opts, store.WithPassword(strings.TrimSpace(string(b))))
	}
	f, err := os.Open(*argsFile)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx := context.Background()
	var opens, records []time.Duration
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		data, err := os.ReadFile(strings.TrimSpace(sc.Text()))
		if err != nil {
			return err
		}
		l, err := launch.Parse(data, time.Now())
		if err != nil {
			return err
		}
		t0 := time.Now()
		st, err := store.Open(ctx, *db, opts...)
		if err != nil {
			return err
		}
		t1 := time.Now()
		sl := l.StoreLaunch("")
		sl.RecordedAt = time.Now()
		_, err = st.RecordLaunch(ctx, sl)
		t2 := time.Now()
		st.Close()
		if err != nil {
			return err
		}
		opens, records = append(opens, t1.Sub(t0)), append(records, t2.Sub(t1))
	}
	if len(opens) == 0 {
		return errors.New("no launch files")
	}
	fmt.Printf("%-12s %d runs  open (connect, authenticate, schema check) median %6.2f ms p90 %6.2f ms  record median %6.2f ms p90 %6.2f ms\n",
		*label, len(opens), ms(quantile(opens, 0.5)), ms(quantile(opens, 0.9)), ms(quantile(records, 0.5)), ms(quantile(records, 0.9)))
	return nil
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
