package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Decision label values of riskgate_requests_total and of the
// X-Riskgate-Decision header.
const (
	decisionAllow           = "allow"
	decisionBlock           = "block"
	decisionReportOnlyBlock = "report_only_block"
)

// routeNone is the route label of requests that matched no route.
const routeNone = "none"

// Metrics are the proxy's Prometheus metrics (DESIGN.md "Metrics"). Label
// children are looked up when a Snapshot is built, never per request, and no
// label ever holds a user or a device id.
type Metrics struct {
	requests          *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	upstreamErrors    *prometheus.CounterVec
	policyEvaluations *prometheus.CounterVec
	reloads           *prometheus.CounterVec
	reloadOK          prometheus.Gauge
	reloadSuccess     prometheus.Counter
	reloadFailure     prometheus.Counter
}

// NewMetrics creates the proxy's metrics and registers them with reg. A nil
// reg leaves them unregistered (tests, benchmarks).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskgate_requests_total",
			Help: "Access decisions by route, decision (allow, block, report_only_block) and reason.",
		}, []string{"route", "decision", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "riskgate_request_duration_seconds",
			Help:    "Time from receiving a request to the end of its response, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskgate_upstream_errors_total",
			Help: "Requests that failed because the route's upstream was unreachable or timed out.",
		}, []string{"route"}),
		policyEvaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskgate_policy_evaluations_total",
			Help: "Policy verdicts per decided request, by policy, mode and result (pass, fail, not_applied).",
		}, []string{"policy", "mode", "result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskgate_config_reloads_total",
			Help: "Configuration reloads by result (success, error).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskgate_config_last_reload_successful",
			Help: "1 when the last configuration reload succeeded, 0 when it failed and the previous configuration is still serving.",
		}),
	}
	m.reloadSuccess = m.reloads.WithLabelValues("success")
	m.reloadFailure = m.reloads.WithLabelValues("error")
	m.reloadOK.Set(1)
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.upstreamErrors, m.policyEvaluations, m.reloads, m.reloadOK)
	}
	return m
}

// ReloadSucceeded records a configuration reload that was applied.
func (m *Metrics) ReloadSucceeded() {
	m.reloadOK.Set(1) // before the counter: a scrape never sees a new count with an old gauge
	m.reloadSuccess.Inc()
}

// ReloadFailed records a configuration reload that was rejected; the previous
// configuration keeps serving.
func (m *Metrics) ReloadFailed() {
	m.reloadOK.Set(0)
	m.reloadFailure.Inc()
}
