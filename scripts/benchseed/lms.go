package main

import (
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/signal"
	"runtime/pprof"
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
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the simulator here when it stops")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with a fresh self-signed certificate for 127.0.0.1, written here as PEM (for $SSL_CERT_FILE)")
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
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	sim := lmssim.New(map[string]string{*key: *secret})
	sim.SetLatency(*latency)
	var base string
	if *tlsCert != "" {
		// httptest's TLS server: its certificate is for 127.0.0.1, which a
		// client trusts once it is in $SSL_CERT_FILE, as a private CA would be.
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		srv := httptest.NewUnstartedServer(sim.Handler())
		srv.Listener.Close()
		srv.Listener = ln
		srv.StartTLS()
		defer srv.Close()
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		if err := os.WriteFile(*tlsCert, cert, 0o644); err != nil {
			return err
		}
		base = srv.URL
	} else {
		var err error
		if base, err = sim.Start(*addr); err != nil {
			return err
		}
		defer sim.Close()
	}
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
