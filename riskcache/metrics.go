package riskcache

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskgate/riskgate/policy"
)

// Sync results (label result of riskgate_risk_sync_total).
const (
	ResultSuccess = "success"
	ResultError   = "error"
)

// Sync error kinds (label kind of riskgate_risk_sync_errors_total).
const (
	KindHTTP4xx = "http_4xx"
	KindHTTP5xx = "http_5xx"
	KindHTTP429 = "http_429"
	KindDecode  = "decode"
	KindTimeout = "timeout"
	KindNetwork = "network"
)

// Metrics are the riskcache metrics of DESIGN.md. A nil *Metrics records
// nothing, so tests and tools may leave it out.
type Metrics struct {
	syncs        *prometheus.CounterVec
	lastSuccess  *prometheus.GaugeVec
	syncDuration *prometheus.HistogramVec
	syncErrors   *prometheus.CounterVec
	webhook      *prometheus.CounterVec

	cache atomic.Pointer[Cache]
}

// NewMetrics registers the riskcache metrics with reg. The per-vendor
// device gauges and data age are read from the cache at scrape time, once
// AttachCache (called by NewSyncer and NewWebhook) has named it.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskgate_risk_sync_total",
			Help: "Risk syncs per vendor, by result (success, error).",
		}, []string{"vendor", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "riskgate_risk_sync_last_success_timestamp_seconds",
			Help: "Unix time of the vendor's last successful sync.",
		}, []string{"vendor"}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "riskgate_risk_sync_duration_seconds",
			Help:    "Duration of risk syncs (every page of one sync), successful or not.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"vendor"}),
		syncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskgate_risk_sync_errors_total",
			Help: "Failed risk syncs by kind (http_4xx, http_5xx, http_429, decode, timeout, network).",
		}, []string{"vendor", "kind"}),
		webhook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskgate_webhook_events_total",
			Help: "Webhook requests by vendor and result.",
		}, []string{"vendor", "result"}),
	}
	reg.MustRegister(m.syncs, m.lastSuccess, m.syncDuration, m.syncErrors, m.webhook, newCacheCollector(m))
	return m
}

// AttachCache makes the scrape-time gauges (riskgate_risk_devices,
// riskgate_risk_data_age_seconds) read c.
func (m *Metrics) AttachCache(c *Cache) {
	if m != nil && c != nil {
		m.cache.Store(c)
	}
}

// syncDone records one sync of vendor.
func (m *Metrics) syncDone(vendor string, start, end time.Time, err error) {
	if m == nil {
		return
	}
	m.syncDuration.WithLabelValues(vendor).Observe(end.Sub(start).Seconds())
	if err != nil {
		m.syncs.WithLabelValues(vendor, ResultError).Inc()
		m.syncErrors.WithLabelValues(vendor, ErrorKind(err)).Inc()
		return
	}
	m.syncs.WithLabelValues(vendor, ResultSuccess).Inc()
	m.lastSuccess.WithLabelValues(vendor).Set(float64(start.UnixNano()) / 1e9)
}

// webhookEvent counts one webhook request.
func (m *Metrics) webhookEvent(vendor, result string) {
	if m == nil {
		return
	}
	m.webhook.WithLabelValues(vendor, result).Inc()
}

// ErrorKind classifies a sync error for riskgate_risk_sync_errors_total:
// http_429, http_5xx, http_4xx (any other non-2xx answer), decode, timeout,
// or network (everything else: refused connections, TLS, token errors).
func ErrorKind(err error) string {
	var he *HTTPError
	if errors.As(err, &he) {
		switch {
		case he.Status == 429:
			return KindHTTP429
		case he.Status >= 500:
			return KindHTTP5xx
		default:
			return KindHTTP4xx
		}
	}
	var (
		de  *DecodeError
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	if errors.As(err, &de) || errors.As(err, &se) || errors.As(err, &ute) {
		return KindDecode
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout
	}
	// Other clients wrap their decoding errors as "decode ...: %w".
	if strings.Contains(err.Error(), "decode") {
		return KindDecode
	}
	return KindNetwork
}

func newCacheCollector(m *Metrics) cacheCollector {
	return cacheCollector{m: m, devices: prometheus.NewDesc("riskgate_risk_devices",
		"Devices in the risk cache per vendor and level.", []string{"vendor", "level"}, nil),
		dataAge: prometheus.NewDesc("riskgate_risk_data_age_seconds",
			"Seconds since the vendor's last successful sync (or restored state); absent before the first.",
			[]string{"vendor"}, nil)}
}

// cacheCollector reads the attached cache at scrape time.
type cacheCollector struct {
	m                *Metrics
	devices, dataAge *prometheus.Desc
}

func (cc cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cc.devices
	ch <- cc.dataAge
}

func (cc cacheCollector) Collect(ch chan<- prometheus.Metric) {
	c := cc.m.cache.Load()
	if c == nil {
		return
	}
	now := c.now()
	for _, v := range c.Vendors() {
		counts := c.Counts(v)
		for _, l := range policy.Levels() {
			ch <- prometheus.MustNewConstMetric(cc.devices, prometheus.GaugeValue, float64(counts[l]), v, l.String())
		}
		if last, ok := c.LastSync(v); ok {
			ch <- prometheus.MustNewConstMetric(cc.dataAge, prometheus.GaugeValue, now.Sub(last).Seconds(), v)
		}
	}
}
