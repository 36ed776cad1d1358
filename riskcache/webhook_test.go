package riskcache

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
)

type webhookFixture struct {
	srv     *httptest.Server
	cache   *Cache
	clock   *fakeClock
	metrics *Metrics
	secrets map[string]string
}

func newWebhookFixture(t *testing.T) *webhookFixture {
	f := &webhookFixture{clock: newClock(), secrets: map[string]string{"acme": "whsec", "nosecret": ""}}
	f.cache = New(Options{Now: f.clock.Now, Vendors: []string{"acme", "nosecret", "other"}})
	f.metrics = NewMetrics(prometheus.NewRegistry())
	wh := NewWebhook(WebhookOptions{
		Cache: f.cache, Now: f.clock.Now, Metrics: f.metrics, Logger: slog.New(slog.DiscardHandler),
		Secrets: func(v string) (string, bool) { s, ok := f.secrets[v]; return s, ok },
	})
	mux := http.NewServeMux()
	mux.Handle("POST /.riskgate/webhook/{vendor}", wh)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *webhookFixture) post(t *testing.T, vendor, sig, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.srv.URL+"/.riskgate/webhook/"+vendor, strings.NewReader(body))
	require.NoError(t, err)
	if sig != "" {
		req.Header.Set(SignatureHeader, sig)
	}
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *webhookFixture) events(vendor, result string) float64 {
	return testutil.ToFloat64(f.metrics.webhook.WithLabelValues(vendor, result))
}

const hookBody = `{"devices":[{"device_id":"d1","risk":"high","user":"a@corp.example","platform":"android","os_version":"14","updated_at":"2026-11-26T09:59:00Z"}]}`

func TestWebhookAppliesSignedPush(t *testing.T) {
	f := newWebhookFixture(t)
	status, body := f.post(t, "acme", Sign("whsec", f.clock.Now(), []byte(hookBody)), hookBody)
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"applied":1}`, body)
	r := f.cache.Lookup("d1")
	assert.Equal(t, policy.LevelHigh, r.Level, "applied before the response")
	assert.Equal(t, "android", r.Platform)
	assert.Equal(t, 1.0, f.events("acme", WebhookOK))
}

func TestWebhookRejects(t *testing.T) {
	now := newClock().Now()
	sig := func(secret string, at time.Time, body string) string { return Sign(secret, at, []byte(body)) }
	big := `{"devices":[],"pad":"` + strings.Repeat("x", MaxWebhookBody) + `"}`
	tests := []struct {
		name, vendor, sig, body string
		status                  int
		result, label           string
	}{
		{"wrong secret", "acme", sig("other", now, hookBody), hookBody, 401, WebhookBadSignature, "acme"},
		{"no signature", "acme", "", hookBody, 401, WebhookBadSignature, "acme"},
		{"malformed signature", "acme", "t=abc,v1=zz", hookBody, 401, WebhookBadSignature, "acme"},
		{"body changed", "acme", sig("whsec", now, hookBody), strings.Replace(hookBody, "high", "secured", 1), 401, WebhookBadSignature, "acme"},
		{"too old", "acme", sig("whsec", now.Add(-6*time.Minute), hookBody), hookBody, 401, WebhookExpired, "acme"},
		{"from the future", "acme", sig("whsec", now.Add(6*time.Minute), hookBody), hookBody, 401, WebhookExpired, "acme"},
		{"bad JSON", "acme", sig("whsec", now, `{"devices":[`), `{"devices":[`, 400, WebhookBadRequest, "acme"},
		{"too large", "acme", sig("whsec", now, big), big, 413, WebhookTooLarge, "acme"},
		{"unknown vendor", "nobody", sig("whsec", now, hookBody), hookBody, 404, WebhookUnknownVendor, "unknown"},
		{"vendor without secret", "other", sig("", now, hookBody), hookBody, 404, WebhookUnknownVendor, "unknown"},
		{"empty secret", "nosecret", sig("", now, hookBody), hookBody, 404, WebhookUnknownVendor, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newWebhookFixture(t)
			status, _ := f.post(t, tt.vendor, tt.sig, tt.body)
			assert.Equal(t, tt.status, status)
			assert.Equal(t, 1.0, f.events(tt.label, tt.result))
			assert.False(t, f.cache.Lookup("d1").Known, "nothing changes on an error")
		})
	}
}

func TestWebhookWithinToleranceAndReplay(t *testing.T) {
	f := newWebhookFixture(t)
	s := Sign("whsec", f.clock.Now().Add(-4*time.Minute), []byte(hookBody))
	status, _ := f.post(t, "acme", s, hookBody)
	require.Equal(t, http.StatusOK, status)

	f.cache.Apply("acme", []Report{{DeviceID: "d1", Level: policy.LevelSecured}})
	status, _ = f.post(t, "acme", s, hookBody)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, 1.0, f.events("acme", WebhookReplay))
	assert.Equal(t, policy.LevelSecured, f.cache.Lookup("d1").Level, "a replay changes nothing")

	// The same body signed at another time is a new event.
	status, _ = f.post(t, "acme", Sign("whsec", f.clock.Now(), []byte(hookBody)), hookBody)
	assert.Equal(t, http.StatusOK, status)
}

func TestWebhookSecretRotation(t *testing.T) {
	f := newWebhookFixture(t)
	ts := strconv.FormatInt(f.clock.Now().Unix(), 10)
	old := Sign("old", f.clock.Now(), []byte(hookBody))
	cur := Sign("whsec", f.clock.Now(), []byte(hookBody))
	both := "t=" + ts + "," + old[strings.Index(old, "v1="):] + "," + cur[strings.Index(cur, "v1="):]
	status, _ := f.post(t, "acme", both, hookBody)
	assert.Equal(t, http.StatusOK, status)

	f.secrets["acme"] = "rotated"
	status, _ = f.post(t, "acme", Sign("whsec", f.clock.Now().Add(time.Second), []byte(hookBody)), hookBody)
	assert.Equal(t, http.StatusUnauthorized, status, "secrets are read per request")
}

func TestWebhookSeenSetIsBounded(t *testing.T) {
	w := NewWebhook(WebhookOptions{Cache: New(Options{}), MaxSeen: 3})
	for i := range 10 {
		assert.True(t, w.remember(strconv.Itoa(i), 1000, 0))
	}
	assert.Len(t, w.seen, 3)
	assert.False(t, w.remember("9", 1000, 0))
	assert.True(t, w.remember("0", 1000, 0), "forgotten when the set was full")
	// Expired signatures are forgotten.
	assert.True(t, w.remember("late", 3000, 2000))
	assert.LessOrEqual(t, len(w.seen), 1)
}

func TestWebhookPathWithoutMux(t *testing.T) {
	f := newWebhookFixture(t)
	wh := NewWebhook(WebhookOptions{Cache: f.cache, Now: f.clock.Now,
		Secrets: func(string) (string, bool) { return "whsec", true }})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/.riskgate/webhook/acme", strings.NewReader(hookBody))
	req.Header.Set(SignatureHeader, Sign("whsec", f.clock.Now(), []byte(hookBody)))
	wh.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusOK, rec.Code)

	rec = httptest.NewRecorder()
	wh.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.riskgate/webhook/acme", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}
