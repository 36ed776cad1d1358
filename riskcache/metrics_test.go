package riskcache

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	f := newSyncFixture(t)
	s := NewSyncer(SyncerOptions{Vendor: "acme", Source: f.v.generic(), Cache: f.cache, Metrics: m,
		Now: f.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	f.v.on("", page("", false, "d1:high", "d2:low", "d3:low", "d4:weird"), reply{status: 429}, reply{status: 502},
		reply{status: 403}, reply{body: "{"})

	require.NoError(t, s.SyncOnce(t.Context()))
	for range 4 {
		f.clock.Add(time.Minute)
		require.Error(t, s.SyncOnce(t.Context()))
	}

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)

	assert.Equal(t, 1.0, testutil.ToFloat64(m.syncs.WithLabelValues("acme", ResultSuccess)))
	assert.Equal(t, 4.0, testutil.ToFloat64(m.syncs.WithLabelValues("acme", ResultError)))
	for _, kind := range []string{KindHTTP429, KindHTTP5xx, KindHTTP4xx, KindDecode} {
		assert.Equal(t, 1.0, testutil.ToFloat64(m.syncErrors.WithLabelValues("acme", kind)), kind)
	}
	assert.Equal(t, float64(newClock().Now().Unix()), testutil.ToFloat64(m.lastSuccess.WithLabelValues("acme")))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var observed uint64
	for _, mf := range mfs {
		if mf.GetName() == "riskgate_risk_sync_duration_seconds" {
			observed = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	assert.Equal(t, uint64(5), observed, "every sync is timed")

	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP riskgate_risk_devices Devices in the risk cache per vendor and level.
# TYPE riskgate_risk_devices gauge
riskgate_risk_devices{level="high",vendor="acme"} 1
riskgate_risk_devices{level="low",vendor="acme"} 2
riskgate_risk_devices{level="medium",vendor="acme"} 0
riskgate_risk_devices{level="secured",vendor="acme"} 0
riskgate_risk_devices{level="unknown",vendor="acme"} 1
# HELP riskgate_risk_data_age_seconds Seconds since the vendor's last successful sync (or restored state); absent before the first.
# TYPE riskgate_risk_data_age_seconds gauge
riskgate_risk_data_age_seconds{vendor="acme"} 240
`), "riskgate_risk_devices", "riskgate_risk_data_age_seconds")
	require.NoError(t, err)
}

func TestMetricsWithoutCache(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	n, err := testutil.GatherAndCount(reg, "riskgate_risk_devices")
	require.NoError(t, err)
	assert.Zero(t, n)
	var nilMetrics *Metrics
	nilMetrics.webhookEvent("a", WebhookOK) // a nil *Metrics records nothing
}
