package proxy

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetricsLint(t *testing.T) {
	h := newHarness(t, testConfig)
	for _, dev := range []string{"d-ok", "d-high"} {
		resp, _ := h.do(t, "mail.test", "/", bearerHeader(h.token(t, alice, map[string]any{"deviceid": dev})))
		require.NotZero(t, resp.StatusCode)
	}
	h.do(t, "unknown.test", "/", nil)
	h.metrics.ReloadFailed()

	problems, err := testutil.GatherAndLint(h.reg)
	require.NoError(t, err)
	assert.Empty(t, problems)

	families, err := h.reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				assert.False(t, strings.Contains(v, "@") || strings.HasPrefix(v, "d-"),
					"%s has an unbounded label value %s=%q", f.GetName(), l.GetName(), v)
			}
		}
	}
	for _, n := range []string{"riskgate_requests_total", "riskgate_request_duration_seconds", "riskgate_upstream_errors_total",
		"riskgate_policy_evaluations_total", "riskgate_config_reloads_total", "riskgate_config_last_reload_successful"} {
		assert.True(t, names[n], "%s not exported", n)
	}

	m := h.metrics
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("mail", "allow", "allowed")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("mail", "block", "risk_too_high")))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.policyEvaluations.WithLabelValues("mobile-risk", "enforce", "pass"))+
		testutil.ToFloat64(m.policyEvaluations.WithLabelValues("mobile-risk", "enforce", "fail")))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.policyEvaluations.WithLabelValues("trial-report", "report-only", "not_applied")))
	assert.Equal(t, uint64(2), histogramCount(t, h.reg, "riskgate_request_duration_seconds", "mail"))
	assert.Equal(t, uint64(1), histogramCount(t, h.reg, "riskgate_request_duration_seconds", "none"))
	assert.Equal(t, 0.0, testutil.ToFloat64(m.reloadOK))
	m.ReloadSucceeded()
	assert.Equal(t, 1.0, testutil.ToFloat64(m.reloadOK))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.reloads.WithLabelValues("success")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.reloads.WithLabelValues("error")))
}

func TestMetricsChildrenPrecreated(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, testConfig)
	m := NewMetrics(reg)
	_, err := NewSnapshot(SnapshotOptions{Policy: h.set, Metrics: m})
	require.NoError(t, err)
	// Every series a request can touch exists before the first request.
	// allow: 2 reasons, block: 8, report_only_block: 7, per route (4).
	assert.Equal(t, 4*(2+8+7), testutil.CollectAndCount(m.requests))
	assert.Equal(t, 4*3, testutil.CollectAndCount(m.policyEvaluations))
	assert.Equal(t, 4, testutil.CollectAndCount(m.upstreamErrors))
	assert.Equal(t, 5, testutil.CollectAndCount(m.duration))
}

// histogramCount returns the sample count of a histogram's route child.
func histogramCount(t *testing.T, g prometheus.Gatherer, name, route string) uint64 {
	t.Helper()
	families, err := g.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == route {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatalf("%s{route=%q} not found", name, route)
	return 0
}
