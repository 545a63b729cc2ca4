package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ltigrade/ltigrade/internal/lmssim"
)

// cmdServeLMS runs the LTI 1.1 simulator with no added latency until it is
// sent SIGTERM or SIGINT.
func cmdServeLMS(args []string) error {
	fs := flag.NewFlagSet("serve-lms", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
	key := fs.String("key", consumerKey, "consumer key")
	secret := fs.String("secret", "", "consumer secret")
	secretFile := fs.String("secret-file", "", "file holding the consumer secret")
	urlFile := fs.String("url-file", "", "write the outcome service URL here once listening")
	latency := fs.Duration("latency", 0, "added latency of every outcome request")
	fs.Parse(args)
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return err
		}
		*secret = strings.TrimSpace(string(b))
	}
	if *secret == "" {
		return errors.New("-secret or -secret-file is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	sim := lmssim.New(map[string]string{*key: *secret})
	sim.SetLatency(*latency)
	base, err := sim.Start(*addr)
	if err != nil {
		return err
	}
	defer sim.Close()
	outcomes := base + "/outcomes"
	if *urlFile != "" {
		tmp := *urlFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(outcomes+"\n"), 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, *urlFile); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "benchseed: lmssim listening, outcome service %s\n", outcomes)
	<-ctx.Done()
	fmt.Fprintf(os.Stderr, "benchseed: lmssim stopping after %d outcome requests\n", sim.Requests())
	return nil
}
