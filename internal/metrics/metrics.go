// Package metrics is what `ltigrade serve` tells Prometheus: the outbox
// and the spool as they are at scrape time (read from the store and the
// spool directory, so they hold whichever process wrote them: the cron
// job's sync, another replica), and counters of what this process did (the
// sends it made, by outcome and LMS host; the HTTP requests it answered,
// by route).
//
// The registry is ltigrade's own, not client_golang's global one: nothing
// a library registers by itself is exported, and tests get a fresh one.
// No metric carries a user name, a token, a secret, a URL path or a query:
// labels are statuses, outcomes, LMS host names, route patterns, methods
// and status codes, each from a bounded set.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ltigrade/ltigrade/internal/outcome"
	"github.com/ltigrade/ltigrade/internal/passback"
	"github.com/ltigrade/ltigrade/internal/spool"
	"github.com/ltigrade/ltigrade/internal/store"
)

// MaxHosts bounds the host label of ltigrade_sends_total: a course talks
// to one LMS or a few, and a store full of launches from odd hosts must
// not blow up Prometheus. Sends to further hosts count under OtherHost.
const MaxHosts = 32

// OtherHost is the host label of sends beyond MaxHosts distinct hosts, and
// of targets that are no URL.
const OtherHost = "other"

// collectTimeout bounds the store reads of one scrape, well under
// Prometheus's default scrape timeout (10 s).
const collectTimeout = 5 * time.Second

// Source is where the scrape-time figures come from.
type Source struct {
	Store    store.Store
	SpoolDir string // "" when there is no spool
	Now      func() time.Time
	// Log receives why a figure could not be read (nil: dropped).
	Log *slog.Logger
}

// Metrics is one process's registry and the counters it updates.
type Metrics struct {
	reg      *prometheus.Registry
	sends    *prometheus.CounterVec
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu    sync.Mutex
	hosts map[string]bool
}

// New registers ltigrade's metrics, the Go runtime's and the process's in
// a new registry.
func New(src Source) *Metrics {
	if src.Now == nil {
		src.Now = time.Now
	}
	m := &Metrics{reg: prometheus.NewRegistry(), hosts: map[string]bool{}}
	m.sends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ltigrade_sends_total",
		Help: "Attempts this process made to deliver a score, by outcome (sent, rejected, retry, superseded) and LMS host.",
	}, []string{"outcome", "host"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ltigrade_http_requests_total",
		Help: "HTTP requests the service answered, by method, route pattern and status code.",
	}, []string{"method", "route", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ltigrade_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route pattern.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 40},
	}, []string{"route"})
	m.reg.MustRegister(m.sends, m.requests, m.duration, &stateCollector{src: src},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry, for tests and for adding collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler answers a scrape in the Prometheus text format (or what the
// scraper negotiates). It does no authorization: the service wraps it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveSend counts one delivery attempt; it is a passback.Engine's
// Observe.
func (m *Metrics) ObserveSend(p *store.Passback, o passback.Outcome) {
	m.sends.WithLabelValues(outcomeOf(o.Status).String(), m.hostLabel(passback.Host(p))).Inc()
}

// hostLabel keeps the host label within MaxHosts values.
func (m *Metrics) hostLabel(h string) string {
	if h == "" {
		return OtherHost
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hosts[h] {
		return h
	}
	if len(m.hosts) >= MaxHosts {
		return OtherHost
	}
	m.hosts[h] = true
	return h
}

// outcomeOf names a sender's store status in the shared outcome vocabulary.
func outcomeOf(status string) outcome.Status {
	switch status {
	case store.StatusSent:
		return outcome.Sent
	case store.StatusRejected:
		return outcome.Rejected
	case store.StatusSuperseded:
		return outcome.Superseded
	}
	// The engine turns anything else into a retry.
	return outcome.Retry
}

// ObserveRequest counts one answered request. route must be a pattern
// (bounded), never the request's path.
func (m *Metrics) ObserveRequest(method, route string, code int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		method = "other" // any token is a method; keep the label bounded
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// stateCollector reads the outbox and the spool at every scrape.
type stateCollector struct{ src Source }

var (
	descPassbacks = prometheus.NewDesc("ltigrade_passbacks",
		"Journaled scores by delivery status, in the whole store (every process's).", []string{"status"}, nil)
	descOldest = prometheus.NewDesc("ltigrade_queue_oldest_age_seconds",
		"Age of the oldest score still owed to an LMS (pending, sending or retry); 0 when none is.", nil, nil)
	descLastSync = prometheus.NewDesc("ltigrade_last_sync_timestamp_seconds",
		"When a sync run (ltigrade sync, the cron job, POST api/sync) last finished, as a Unix time; 0 if none ever did.", nil, nil)
	descStoreUp = prometheus.NewDesc("ltigrade_store_up",
		"1 if this scrape could read the store, else 0 (and the outbox figures are missing).", nil, nil)
	descBacklog = prometheus.NewDesc("ltigrade_spool_backlog_files",
		"Launches the hub hook spooled that are not recorded yet.", nil, nil)
	descFailed = prometheus.NewDesc("ltigrade_spool_failed_files",
		"Spooled launches moved to failed/ (refused or invalid), kept for an admin.", nil, nil)
	descSpoolUp = prometheus.NewDesc("ltigrade_spool_up",
		"1 if this scrape could read the spool directory, else 0 (and the spool figures are missing).", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPassbacks, descOldest, descLastSync, descStoreUp, descBacklog, descFailed, descSpoolUp} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st, err := c.src.Store.OutboxStats(ctx)
	if err != nil {
		c.logf("metrics: cannot read the outbox", err)
		gauge(descStoreUp, 0)
	} else {
		gauge(descStoreUp, 1)
		for _, s := range store.Statuses {
			gauge(descPassbacks, float64(st.Statuses[s]), s)
		}
		age := 0.0
		if !st.OldestUnsent.IsZero() {
			age = max(c.src.Now().Sub(st.OldestUnsent).Seconds(), 0)
		}
		gauge(descOldest, age)
		last := 0.0
		if !st.LastSync.IsZero() {
			last = float64(st.LastSync.UnixMicro()) / 1e6
		}
		gauge(descLastSync, last)
	}
	if c.src.SpoolDir == "" {
		return
	}
	b, err := spool.Count(c.src.SpoolDir)
	if err != nil {
		c.logf("metrics: cannot read the spool", err)
		gauge(descSpoolUp, 0)
		return
	}
	gauge(descSpoolUp, 1)
	gauge(descBacklog, float64(b.Waiting))
	gauge(descFailed, float64(b.Failed))
}

func (c *stateCollector) logf(msg string, err error) {
	if c.src.Log != nil {
		c.src.Log.Error(msg, "error", err.Error())
	}
}
