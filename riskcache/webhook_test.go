package riskcache

import (
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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
	for i := range 3 {
		assert.Equal(t, rememberOK, w.remember(strconv.Itoa(i), 1000, 0))
	}
	assert.Equal(t, rememberReplay, w.remember("2", 1000, 0))
	// Full of signatures still inside their window: a new one is refused
	// (the vendor retries) and none is forgotten, so none can be replayed.
	assert.Equal(t, rememberFull, w.remember("3", 1000, 0))
	assert.Equal(t, rememberReplay, w.remember("0", 1000, 0), "never forgotten while inside the window")
	assert.Len(t, w.seen, 3)
	// Expired signatures are forgotten, making room.
	assert.Equal(t, rememberOK, w.remember("late", 3000, 2000))
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

// padded returns a valid webhook body of exactly n bytes.
func padded(n int) string {
	const head, tail = `{"devices":[]`, `}`
	return head + strings.Repeat(" ", n-len(head)-len(tail)) + tail
}

func TestWebhookEdges(t *testing.T) {
	now := newClock().Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	mac := func(ts, body string) string { return hex.EncodeToString(signature("whsec", ts, []byte(body))) }
	tests := []struct {
		name, sig, body, contentType string
		status                       int
		result                       string
	}{
		{name: "exactly 5 minutes in the future", sig: Sign("whsec", now.Add(WebhookTolerance), []byte(hookBody)), body: hookBody, status: 200, result: WebhookOK},
		{name: "5 minutes and 1 second in the future", sig: Sign("whsec", now.Add(WebhookTolerance+time.Second), []byte(hookBody)), body: hookBody, status: 401, result: WebhookExpired},
		{name: "exactly 5 minutes old", sig: Sign("whsec", now.Add(-WebhookTolerance), []byte(hookBody)), body: hookBody, status: 200, result: WebhookOK},
		{name: "non-numeric t", sig: "t=now,v1=" + mac("now", hookBody), body: hookBody, status: 401, result: WebhookBadSignature},
		{name: "t with a fraction", sig: "t=" + ts + ".5,v1=" + mac(ts+".5", hookBody), body: hookBody, status: 401, result: WebhookBadSignature},
		{name: "t far out of range", sig: "t=99999999999999999999,v1=" + mac("99999999999999999999", hookBody), body: hookBody, status: 401, result: WebhookBadSignature},
		{name: "t the largest int64", sig: "t=9223372036854775807,v1=" + mac("9223372036854775807", hookBody), body: hookBody, status: 401, result: WebhookExpired},
		{name: "t the smallest int64", sig: "t=-9223372036854775808,v1=" + mac("-9223372036854775808", hookBody), body: hookBody, status: 401, result: WebhookExpired},
		{name: "two t values", sig: "t=" + ts + ",t=" + ts + ",v1=" + mac(ts, hookBody), body: hookBody, status: 401, result: WebhookBadSignature},
		{name: "several v1, one good", sig: "t=" + ts + ",v1=" + strings.Repeat("00", 32) + ",v1=" + mac(ts, hookBody) + ",v1=" + strings.Repeat("ff", 32), body: hookBody, status: 200, result: WebhookOK},
		{name: "several v1, none good", sig: "t=" + ts + ",v1=" + strings.Repeat("00", 32) + ",v1=" + strings.Repeat("ff", 32), body: hookBody, status: 401, result: WebhookBadSignature},
		{name: "short v1", sig: "t=" + ts + ",v1=" + mac(ts, hookBody)[:62], body: hookBody, status: 401, result: WebhookBadSignature},
		{name: "v0 only", sig: "t=" + ts + ",v0=" + mac(ts, hookBody), body: hookBody, status: 401, result: WebhookBadSignature},
		{name: "signature over another body", sig: Sign("whsec", now, []byte(`{"devices":[]}`)), body: hookBody, status: 401, result: WebhookBadSignature},
		{name: "body of exactly 1 MiB", sig: Sign("whsec", now, []byte(padded(MaxWebhookBody))), body: padded(MaxWebhookBody), status: 200, result: WebhookOK},
		{name: "body of 1 MiB and 1 byte", sig: Sign("whsec", now, []byte(padded(MaxWebhookBody+1))), body: padded(MaxWebhookBody + 1), status: 413, result: WebhookTooLarge},
		// The signature, not the content type, authenticates a push: a
		// vendor's sender that labels JSON text/plain still works, and a
		// browser's cross-site form post cannot sign.
		{name: "text/plain content type", sig: Sign("whsec", now, []byte(hookBody)), body: hookBody, contentType: "text/plain", status: 200, result: WebhookOK},
		{name: "form content type, unsigned", body: "devices=x", contentType: "application/x-www-form-urlencoded", status: 401, result: WebhookBadSignature},
		{name: "valid signature, body not a page", sig: Sign("whsec", now, []byte(`{"devices":{}}`)), body: `{"devices":{}}`, status: 400, result: WebhookBadRequest},
		{name: "valid signature, no devices", sig: Sign("whsec", now, []byte(`{}`)), body: `{}`, status: 400, result: WebhookBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newWebhookFixture(t)
			f.cache.Apply("acme", []Report{{DeviceID: "d1", Level: policy.LevelSecured}})
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.srv.URL+"/.riskgate/webhook/acme", strings.NewReader(tt.body))
			require.NoError(t, err)
			if tt.sig != "" {
				req.Header.Set(SignatureHeader, tt.sig)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := f.srv.Client().Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, 1.0, f.events("acme", tt.result))
			if tt.status != http.StatusOK {
				assert.Equal(t, policy.LevelSecured, f.cache.Lookup("d1").Level, "a refused push changes nothing")
			}
		})
	}
}

func TestWebhookReplayAfterWindow(t *testing.T) {
	f := newWebhookFixture(t)
	s := Sign("whsec", f.clock.Now(), []byte(hookBody))
	status, _ := f.post(t, "acme", s, hookBody)
	require.Equal(t, http.StatusOK, status)
	f.cache.Apply("acme", []Report{{DeviceID: "d1", Level: policy.LevelSecured}})

	// Once the signature has left the window it is refused as expired,
	// though the seen set has forgotten it.
	f.clock.Add(WebhookTolerance + time.Second)
	status, _ = f.post(t, "acme", Sign("whsec", f.clock.Now(), []byte(`{"devices":[]}`)), `{"devices":[]}`)
	require.Equal(t, http.StatusOK, status, "a new push evicts the expired signature")
	status, _ = f.post(t, "acme", s, hookBody)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, 1.0, f.events("acme", WebhookExpired))
	assert.Equal(t, policy.LevelSecured, f.cache.Lookup("d1").Level)
}

func TestWebhookConcurrentIdenticalPushes(t *testing.T) {
	f := newWebhookFixture(t)
	s := Sign("whsec", f.clock.Now(), []byte(hookBody))
	const n = 16
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/.riskgate/webhook/acme", strings.NewReader(hookBody))
			if err != nil {
				statuses <- 0
				return
			}
			req.Header.Set(SignatureHeader, s)
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	assert.Equal(t, map[int]int{http.StatusOK: 1, http.StatusUnauthorized: n - 1}, count)
	assert.Equal(t, float64(n-1), f.events("acme", WebhookReplay))
}
