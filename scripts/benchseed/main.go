// Command benchseed prepares and times what scripts/bench-cli.sh measures
// (issue #2, docs/benchmarks.md). It is a development tool, not part of
// ltigrade.
//
//	benchseed seed      -db PATH [-users 100000 -launches 10 -links 5 -batch 10000]
//	    a store of users×launches realistic LTI 1.1 launches (Canvas-shaped
//	    auth_state, nbgitpuller links), written with RecordLaunches in
//	    batches; reused when PATH was already seeded with the same parameters
//	benchseed inputs    -dir DIR -users N -n RUNS
//	    record.args (one new launch file per run, for existing users and
//	    resource links, each launched later than the last) and resolve.args
//	    (one notebook path of a random user per run)
//	benchseed passbacks -db PATH -n 5000 -url OUTCOME_URL -key K
//	    a fresh store with N sessions and one queued passback each
//	benchseed serve-lms -addr 127.0.0.1:0 -key K -secret-file F [-url-file F] [-tls-cert F]
//	    runs the lmssim LTI 1.1 simulator (no latency) until SIGTERM
//	benchseed serve-hub -addr 127.0.0.1:0 -token T -user NAME [-group G] [-url-file F]
//	    a stand-in for JupyterHub's GET /hub/api/user that knows one token,
//	    for the grading service's benchmark (scripts/bench-service.sh);
//	    -student-token-prefix P also takes P+NAME as student NAME's token
//	    (scripts/bench-submit.sh)
//	benchseed time      -label L [-argsfile F | -runs N] [-warmup 3] [-setup SH]
//	                    [-match RE] [-items N] -- COMMAND ARGS...
//	    runs COMMAND (plus one argument per line of -argsfile) as a whole
//	    process, times each run from fork to exit with Go's monotonic clock,
//	    and prints median, p90, min and max (and items/s with -items)
//	benchseed phases    -label L -db DSN -argsfile F [-password-file F]
//	    in one process, per launch file: open the store as a one-shot
//	    command does, record the launch, close; medians of the two parts
package main

import (
	"fmt"
	"os"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchseed seed|inputs|passbacks|serve-lms|serve-hub|time|phases [flags] (see the package comment)")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "seed":
		err = cmdSeed(args)
	case "inputs":
		err = cmdInputs(args)
	case "passbacks":
		err = cmdPassbacks(args)
	case "serve-lms":
		err = cmdServeLMS(args)
	case "serve-hub":
		err = cmdServeHub(args)
	case "time":
		err = cmdTime(args)
	case "phases":
		err = cmdPhases(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchseed %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
