package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/ltigrade/ltigrade/internal/store"
)

// MaxClockSkew is how far an LMS's clock may be from ours. OAuth 1.0a
// signatures and LTI 1.3 client assertions carry our time, and LMSs refuse
// ones outside a window of a few minutes; a minute off already means one
// clock is unsynchronised and drifting.
const MaxClockSkew = time.Minute

// DefaultNetworkTimeout bounds each host's check (TLS handshake and one
// request).
const DefaultNetworkTimeout = 10 * time.Second

// networkWorkers is how many hosts are checked at once.
const networkWorkers = 8

// maxOutcomeURLs bounds the outcome URLs read from the store: an LMS has
// one outcome service (a few at most), so more means several LMSs.
const maxOutcomeURLs = 1000

// NewClient is the HTTP client of the network checks: TLS verified against
// roots (nil: the system's, which honour $SSL_CERT_FILE), the proxy from
// the environment, and redirects not followed (the answer of the host
// asked is what counts, and nothing is sent anywhere else).
func NewClient(roots *x509.CertPool, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: timeout,
			ForceAttemptHTTP2:   true,
			DisableKeepAlives:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       timeout,
	}
}

type target struct {
	name, subject, url string
}

// CheckNetwork is checks "outcome_host" (one per LMS host named by the
// stored LTI 1.1 launches' outcome service URLs) and "token_endpoint" (one
// per LTI 1.3 platform): each answers a TLS handshake with a certificate
// the system trusts and an unauthenticated HEAD request, and its clock (the
// Date header) is within MaxClockSkew of ours. No score, credential or
// signed message is sent: the request carries no body and no
// Authorization. Hosts are checked concurrently.
func CheckNetwork(ctx context.Context, s Setup, st store.Store) []Check {
	var out []Check
	var targets []target
	if p, isP := st.(store.Prober); isP {
		urls, err := p.OutcomeURLs(ctx, maxOutcomeURLs)
		if err != nil {
			out = append(out, fail("outcome_host", "", "listing the outcome services of stored launches: "+err.Error(), ""))
		}
		seen := map[string]bool{}
		bad := 0
		for _, raw := range urls {
			u, err := url.Parse(raw)
			if err != nil || u.Host == "" {
				bad++ // not shown: details name hosts only
				continue
			}
			host := u.Scheme + "://" + u.Host
			if !seen[host] {
				seen[host] = true
				targets = append(targets, target{"outcome_host", u.Host, raw})
			}
		}
		if bad > 0 {
			out = append(out, fail("outcome_host", "", fmt.Sprintf("%d stored launch outcome service URL%s not absolute (an LMS sent a broken lis_outcome_service_url)", bad, map[bool]string{true: "s are", false: " is"}[bad > 1]), ""))
		}
	} else {
		out = append(out, skipped("outcome_host", "needs a database that opens"))
	}
	seen := map[string]bool{}
	for _, p := range s.Config.LTI13.Platforms {
		if !seen[p.TokenURL] {
			seen[p.TokenURL] = true
			targets = append(targets, target{"token_endpoint", p.Issuer, p.TokenURL})
		}
	}
	if len(targets) == 0 && len(out) == 0 {
		return []Check{skipped("outcome_host", "no stored launch names an outcome service and no [[lti13.platforms]] are configured")}
	}
	timeout := s.NetworkTimeout
	if timeout <= 0 {
		timeout = DefaultNetworkTimeout
	}
	client := s.Client
	if client == nil {
		client = NewClient(nil, timeout)
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	results := make([]Check, len(targets))
	sem := make(chan struct{}, networkWorkers)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = probe(ctx, client, timeout, now, t)
		}()
	}
	wg.Wait()
	return append(out, results...)
}

// probe checks one host. Details name the host, never the whole URL (its
// query could hold something meant for the LMS only).
func probe(ctx context.Context, client *http.Client, timeout time.Duration, now func() time.Time, t target) Check {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u, err := url.Parse(t.url)
	if err != nil {
		return fail(t.name, t.subject, "not a URL", "")
	}
	where := u.Scheme + "://" + u.Host
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, t.url, nil)
	if err != nil {
		return fail(t.name, t.subject, where+": "+err.Error(), "")
	}
	req.Header.Set("User-Agent", "ltigrade-doctor")
	sent := now()
	resp, err := client.Do(req)
	got := now()
	if err != nil {
		detail, hint := describeNetErr(err, timeout)
		return fail(t.name, t.subject, where+": "+detail, hint)
	}
	resp.Body.Close()
	detail := where + ": "
	if resp.TLS != nil {
		detail += tls.VersionName(resp.TLS.Version) + ", certificate trusted, "
	} else {
		detail += "plain HTTP, "
	}
	detail += "HTTP " + fmt.Sprint(resp.StatusCode)
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return warn(t.name, t.subject, detail+"; no Date header, so its clock was not compared", "")
	}
	// The Date header has whole seconds and was made while the request was
	// in flight: compare it with the middle of the exchange.
	mid := sent.Add(got.Sub(sent) / 2)
	skew := date.Sub(mid.Truncate(time.Second))
	if skew > MaxClockSkew || skew < -MaxClockSkew {
		dir := "ahead of"
		if skew < 0 {
			dir, skew = "behind", -skew
		}
		return fail(t.name, t.subject, fmt.Sprintf("%s; its clock is %s %s ours", detail, age(skew), dir),
			"LMSs refuse OAuth signatures and LTI 1.3 assertions whose time is too far off: check this machine's clock (timedatectl, NTP); if ours is right, tell the LMS's admins")
	}
	if resp.StatusCode >= 500 {
		return warn(t.name, t.subject, detail+" (a server error)", "the LMS may be down or refusing HEAD; if scores stay queued, ask its admins")
	}
	return ok(t.name, t.subject, fmt.Sprintf("%s, clock %s off", detail, age(absDur(skew))))
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// describeNetErr says what failed, and how it is usually fixed.
func describeNetErr(err error, timeout time.Duration) (detail, hint string) {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is named by the caller, by host only
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return "TLS certificate not trusted: " + err.Error(),
			"its certificate must verify against this machine's CA roots for its host name: install the LMS's CA in the system store (update-ca-certificates) or point $SSL_CERT_FILE at a bundle with it; ltigrade never turns verification off"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "no answer within " + timeout.String(), "check DNS, the firewall and $HTTPS_PROXY for this machine"
	case errors.As(err, &dns):
		return "cannot resolve: " + err.Error(), "check the host name and this machine's DNS"
	case errors.As(err, &op):
		return "cannot connect: " + err.Error(), "check the firewall and $HTTPS_PROXY for this machine"
	}
	return err.Error(), ""
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
