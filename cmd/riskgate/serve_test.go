package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/oidctest"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

// pushWebhook posts devices to the vendor's webhook, signed with secret.
func pushWebhook(t *testing.T, client *http.Client, proxyURL, vendor, secret string, devices ...map[string]string) (int, string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"devices": devices})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, proxyURL+riskcache.WebhookPathPrefix+vendor, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(riskcache.SignatureHeader, riskcache.Sign(secret, time.Now(), body))
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func webhookDevice(id, risk string) map[string]string {
	return map[string]string{"device_id": id, "risk": risk, "user": testUser, "platform": "ios",
		"os_version": "17.4", "updated_at": time.Now().UTC().Format(time.RFC3339)}
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	v := newVendor(t)
	v.set("dev-ok", policy.LevelSecured, testUser, "ios", "17.4")
	v.set("dev-med", policy.LevelMedium, testUser, "android", "14")
	up := newUpstream(t)

	// Hold the first sync: riskgate must not be ready before it.
	release := v.hold()
	defer release()

	path := filepath.Join(t.TempDir(), "riskgate.yaml")
	writeFile(t, path, renderConfig(configParams{
		Issuer:   iss.URL,
		Upstream: up.URL,
		// A long interval: only the first sync and the webhook change risk.
		Vendors:  vendorYAML("acme", v.url(), time.Hour, true),
		Policies: policyYAML("mail-risk", "low"),
	}))
	s := startServe(t, path)
	c := s.client

	code, body := s.adminGet(t, "/healthz")
	assert.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool { return v.requests.Load() > 0 }, waitTimeout, pollInterval, "no sync started")
	code, body = s.adminGet(t, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code, "ready before the first sync: %s", body)
	assert.Contains(t, body, "first sync")
	code, body = s.adminGet(t, "/status")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"ready": false`)
	assert.NotContains(t, body, `"last_sync"`, "no sync yet")
	release()
	s.waitReady(t)
	code, body = s.adminGet(t, "/status")
	assert.Equal(t, http.StatusOK, code)
	var st status
	require.NoError(t, json.Unmarshal([]byte(body), &st), body)
	assert.True(t, st.Ready)
	require.Len(t, st.Vendors, 1)
	assert.Equal(t, "acme", st.Vendors[0].Name)
	assert.True(t, st.Vendors[0].Fresh)
	require.NotNil(t, st.Vendors[0].LastSync)
	assert.Equal(t, map[string]int{"unknown": 0, "secured": 1, "low": 0, "medium": 1, "high": 0}, st.Vendors[0].Devices)

	okTok := token(t, iss, testUser, []string{"staff", "mobile"}, "dev-ok")
	medTok := token(t, iss, testUser, []string{"staff"}, "dev-med")

	t.Run("allowed request reaches the upstream with identity headers", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, s.proxyURL+"/owa/inbox", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+okTok)
		// Spoofed identity headers never reach the upstream.
		req.Header.Set("X-Forwarded-User", "mallory@evil.example")
		req.Header.Set("X-Riskgate-Risk", "secured")
		req.Header.Set("X-Riskgate-Device-Id", "dev-forged")
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var seen upstreamSeen
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&seen))
		assert.Equal(t, upstreamSeen{
			Path: "/owa/inbox", User: testUser, Email: testUser, Groups: "staff,mobile",
			Device: "dev-ok", Risk: "secured", Decision: "allow", Auth: seen.Auth,
		}, seen)
	})

	t.Run("blocked request gets 403 JSON", func(t *testing.T) {
		r := mustDo(t, c, s.proxyURL+"/owa", medTok)
		require.Equal(t, http.StatusForbidden, r.Status, r.Body)
		assert.Equal(t, "block", r.Block["decision"])
		assert.Equal(t, "risk_too_high", r.Block["reason"])
		assert.Equal(t, "mail-risk", r.Block["policy"])
		assert.Equal(t, "medium", r.Block["risk"])
		assert.Equal(t, "dev-med", r.Block["device_id"])
		assert.NotEmpty(t, r.Block["request_id"])

		r = mustDo(t, c, s.proxyURL+"/owa", token(t, iss, testUser, nil, "dev-nobody"))
		require.Equal(t, http.StatusForbidden, r.Status, r.Body)
		assert.Equal(t, "device_unknown", r.Block["reason"])

		r = mustDo(t, c, s.proxyURL+"/owa", token(t, iss, testUser, nil, ""))
		require.Equal(t, http.StatusForbidden, r.Status, r.Body)
		assert.Equal(t, "device_missing", r.Block["reason"])
	})

	t.Run("no or bad token gets 401", func(t *testing.T) {
		resp, err := c.Get(s.proxyURL + "/owa")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")

		claims := iss.Claims(testUser, "another-app")
		claims["deviceid"] = "dev-ok"
		r := mustDo(t, c, s.proxyURL+"/owa", iss.Sign(t, claims))
		assert.Equal(t, http.StatusUnauthorized, r.Status)
	})

	t.Run("webhook flips a device for the very next request", func(t *testing.T) {
		code, body := pushWebhook(t, c, s.proxyURL, "acme", webhookSecret, webhookDevice("dev-ok", "high"))
		require.Equal(t, http.StatusOK, code, body)
		r := mustDo(t, c, s.proxyURL+"/owa", okTok)
		require.Equal(t, http.StatusForbidden, r.Status, r.Body)
		assert.Equal(t, "risk_too_high", r.Block["reason"])
		assert.Equal(t, "high", r.Block["risk"])

		// A bad signature changes nothing.
		code, _ = pushWebhook(t, c, s.proxyURL, "acme", "not-the-secret", webhookDevice("dev-ok", "secured"))
		assert.Equal(t, http.StatusUnauthorized, code)
		r = mustDo(t, c, s.proxyURL+"/owa", okTok)
		assert.Equal(t, http.StatusForbidden, r.Status)

		// Remediated: access comes back on its own.
		code, body = pushWebhook(t, c, s.proxyURL, "acme", webhookSecret, webhookDevice("dev-ok", "secured"))
		require.Equal(t, http.StatusOK, code, body)
		r = mustDo(t, c, s.proxyURL+"/owa", okTok)
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, "secured", r.Seen.Risk)

		// A vendor without a webhook_secret has no webhook.
		code, _ = pushWebhook(t, c, s.proxyURL, "other", webhookSecret, webhookDevice("dev-ok", "high"))
		assert.Equal(t, http.StatusNotFound, code)
	})

	t.Run("admin explain uses the live cache", func(t *testing.T) {
		explainURL := func(extra string) string {
			q := url.Values{"url": {"https://app.corp.example/owa"}, "user": {testUser}, "device": {"dev-med"}}
			return "/explain?" + q.Encode() + extra
		}
		code, body := s.adminGet(t, explainURL(""))
		require.Equal(t, http.StatusOK, code, body)
		var ex explainJSON
		require.NoError(t, json.Unmarshal([]byte(body), &ex), body)
		assert.Equal(t, "medium", ex.Risk, "risk from the cache the vendor filled")
		assert.False(t, ex.Decision.Allow)
		assert.Equal(t, "risk_too_high", ex.Decision.Reason)
		assert.Equal(t, "mail-risk", ex.Decision.Policy)
		require.Len(t, ex.Policies, 1)
		assert.Equal(t, "risk medium > max_risk low", ex.Policies[0].Detail)

		code, body = s.adminGet(t, explainURL("&risk=low"))
		require.Equal(t, http.StatusOK, code, body)
		ex = explainJSON{}
		require.NoError(t, json.Unmarshal([]byte(body), &ex), body)
		assert.Equal(t, "low", ex.Risk, "risk= overrides the cache")
		assert.True(t, ex.Decision.Allow)

		req, err := http.NewRequest(http.MethodGet, s.adminURL+explainURL(""), nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "text/plain")
		resp, err := c.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Contains(t, string(b), "decision: block\nreason:   risk_too_high\npolicy:   mail-risk\n")

		code, body = s.adminGet(t, "/explain?url=https://app.corp.example/&user=")
		assert.Equal(t, http.StatusBadRequest, code)
		assert.Contains(t, body, `"error"`)
	})

	t.Run("metrics", func(t *testing.T) {
		m := s.metrics(t)
		for _, want := range []struct {
			labels []string
			min    float64
		}{
			{[]string{"route=app", "decision=allow", "reason=allowed"}, 2},
			{[]string{"route=app", "decision=block", "reason=risk_too_high"}, 3},
			{[]string{"route=app", "decision=block", "reason=device_unknown"}, 1},
			{[]string{"route=app", "decision=block", "reason=device_missing"}, 1},
		} {
			got, ok := metricValue(m, "riskgate_requests_total", want.labels...)
			if assert.True(t, ok, "riskgate_requests_total%v missing", want.labels) {
				assert.GreaterOrEqual(t, got, want.min, "riskgate_requests_total%v", want.labels)
			}
		}
		assert.GreaterOrEqual(t, metricOr0(m, "riskgate_risk_sync_total", "vendor=acme", "result=success"), 1.0)
		assert.Equal(t, 2.0, metricOr0(m, "riskgate_webhook_events_total", "vendor=acme", "result=ok"))
		assert.Equal(t, 1.0, metricOr0(m, "riskgate_webhook_events_total", "vendor=acme", "result=bad_signature"))
		_, ok := metricValue(m, "riskgate_request_duration_seconds_count", "route=app")
		assert.True(t, ok)
		assert.Equal(t, 1.0, metricOr0(m, "riskgate_config_last_reload_successful"))
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, "riskgate_") {
				assert.NotContains(t, line, "dev-", "no device id in a label: %s", line)
				assert.NotContains(t, line, testUser, "no user in a label: %s", line)
			}
		}
	})

	require.NoError(t, s.stop())
}
