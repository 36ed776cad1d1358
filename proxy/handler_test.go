package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/oidctest"
	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

// testConfig is the configuration most tests run with. {{ISSUER}} and
// {{UPSTREAM}} are replaced by the test issuer's and upstream's URLs.
const testConfig = `
server:
  upstream_timeout: 2s
auth:
  issuer: {{ISSUER}}
  client_id: riskgate
  audiences: [riskgate, riskgate-api]
devices:
  sources:
    - claim: deviceid
    - header: {name: X-Device-Id, trusted_cidrs: [10.0.0.0/8]}
    - query: DeviceId
risk:
  max_age: 1h
routes:
  - name: mail
    host: mail.test
    upstream: {{UPSTREAM}}
    display_name: Mail
  - name: other
    host: other.test
    upstream: {{UPSTREAM}}
  - name: trial
    host: trial.test
    upstream: {{UPSTREAM}}
  - name: lax
    host: lax.test
    upstream: {{UPSTREAM}}
policies:
  - name: mobile-risk
    routes: [mail]
    exclude_groups: [breakglass]
    max_risk: low
    min_os: {ios: "16.0"}
    block_platforms: [windows]
  - name: trial-enforce
    routes: [trial]
    max_risk: high
  - name: trial-report
    routes: [trial]
    mode: report-only
    max_risk: secured
  - name: lax-owner
    routes: [lax]
    max_risk: low
    require_owner_match: false
`

const (
	alice = "alice@corp.example"
	bob   = "bob@corp.example"
)

// upstream is an httptest server that records what it received.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := r.Clone(context.Background())
		u.mu.Lock()
		u.reqs = append(u.reqs, rec)
		u.mu.Unlock()
		w.Header().Set("X-Request-Id", "upstream-own-id")
		_, _ = io.WriteString(w, "hello from upstream")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) received() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.reqs...)
}

func (u *upstream) last(t testing.TB) *http.Request {
	t.Helper()
	reqs := u.received()
	require.NotEmpty(t, reqs, "upstream received nothing")
	return reqs[len(reqs)-1]
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log lines with the given message.
func (b *syncBuffer) lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// harness is the real handler wired to a real issuer, upstream and cache.
type harness struct {
	issuer   *oidctest.Issuer
	upstream *upstream
	cache    *riskcache.Cache
	proxy    *Proxy
	server   *httptest.Server
	reg      *prometheus.Registry
	metrics  *Metrics
	logs     *syncBuffer
	now      time.Time
	set      *policy.Set
}

type harnessOption func(*Options, *SnapshotOptions)

func newHarness(t testing.TB, config string, hopts ...harnessOption) *harness {
	t.Helper()
	h := &harness{
		issuer:   oidctest.New(t),
		upstream: newUpstream(t),
		reg:      prometheus.NewRegistry(),
		logs:     &syncBuffer{},
		now:      time.Now().Truncate(time.Second),
	}
	config = strings.NewReplacer("{{ISSUER}}", h.issuer.URL, "{{UPSTREAM}}", h.upstream.URL).Replace(config)
	cfg, err := policy.Parse("test.yaml", []byte(config), func(string) string { return "" })
	require.NoError(t, err)
	h.set, err = policy.Compile(cfg)
	require.NoError(t, err)

	clock := func() time.Time { return h.now }
	h.cache = riskcache.New(riskcache.Options{MaxAge: cfg.Risk.MaxAge.Duration, Now: clock, Vendors: []string{"acme", "old"}})
	report := func(id string, level policy.Level, user, platform, os string) riskcache.Report {
		return riskcache.Report{DeviceID: id, Level: level, User: user, Platform: platform, OSVersion: os, UpdatedAt: h.now}
	}
	h.cache.Apply("acme", []riskcache.Report{
		report("d-ok", policy.LevelSecured, alice, "ios", "17.4"),
		report("d-low", policy.LevelLow, alice, "ios", "17.4"),
		report("d-high", policy.LevelHigh, alice, "ios", "17.4"),
		report("d-bob", policy.LevelSecured, bob, "ios", "17.4"),
		report("d-win", policy.LevelSecured, alice, "windows", "10.0"),
		report("d-oldos", policy.LevelSecured, alice, "ios", "15.2"),
	})
	h.cache.MarkSynced("acme", h.now)
	h.cache.Apply("old", []riskcache.Report{report("d-stale", policy.LevelSecured, alice, "ios", "17.4")})
	h.cache.MarkSynced("old", h.now.Add(-2*time.Hour))

	bearer, err := NewBearer(context.Background(), BearerOptions{
		Issuer:    cfg.Auth.Issuer,
		Audiences: cfg.Auth.Audiences,
		Client:    h.issuer.Server.Client(),
	})
	require.NoError(t, err)

	logger := slog.New(slog.NewJSONHandler(h.logs, nil))
	h.metrics = NewMetrics(h.reg)
	opts := Options{Logger: logger, Now: clock, Risk: h.cache}
	sopts := SnapshotOptions{Policy: h.set, Authenticators: []Authenticator{bearer}, Metrics: h.metrics, Logger: logger}
	for _, o := range hopts {
		o(&opts, &sopts)
	}
	snap, err := NewSnapshot(sopts)
	require.NoError(t, err)
	opts.Snapshot = snap
	h.proxy = New(opts)
	h.server = httptest.NewServer(h.proxy)
	t.Cleanup(h.server.Close)
	return h
}

// token signs a token for user with extra claims.
func (h *harness) token(t testing.TB, user string, extra map[string]any) string {
	c := h.issuer.Claims(user, "riskgate")
	for k, v := range extra {
		c[k] = v
	}
	return h.issuer.Sign(t, c)
}

// do sends a request through the proxy server.
func (h *harness) do(t testing.TB, host, target string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.server.URL+target, nil)
	require.NoError(t, err)
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func bearerHeader(token string, kv ...string) http.Header {
	h := http.Header{"Authorization": {"Bearer " + token}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestEveryReasonEndToEnd(t *testing.T) {
	h := newHarness(t, testConfig)
	tests := []struct {
		name     string
		host     string
		user     string
		claims   map[string]any
		status   int
		reason   policy.Reason
		policy   string
		risk     string
		decision string
	}{
		{name: "allowed", host: "mail.test", user: alice, claims: map[string]any{"deviceid": "d-ok"},
			status: 200, reason: policy.ReasonAllowed, policy: "mobile-risk", risk: "secured", decision: "allow"},
		{name: "excluded", host: "mail.test", user: alice, claims: map[string]any{"deviceid": "d-high", "groups": []string{"staff", "breakglass"}},
			status: 200, reason: policy.ReasonExcluded, policy: "mobile-risk", risk: "high", decision: "allow"},
		{name: "risk_too_high", host: "mail.test", user: alice, claims: map[string]any{"deviceid": "d-high"},
			status: 403, reason: policy.ReasonRiskTooHigh, policy: "mobile-risk", risk: "high", decision: "block"},
		{name: "device_unknown", host: "mail.test", user: alice, claims: map[string]any{"deviceid": "d-nobody-knows"},
			status: 403, reason: policy.ReasonDeviceUnknown, policy: "mobile-risk", risk: "unknown", decision: "block"},
		{name: "risk_stale", host: "mail.test", user: alice, claims: map[string]any{"deviceid": "d-stale"},
			status: 403, reason: policy.ReasonRiskStale, policy: "mobile-risk", risk: "secured", decision: "block"},
		{name: "device_missing", host: "mail.test", user: alice,
			status: 403, reason: policy.ReasonDeviceMissing, policy: "mobile-risk", risk: "unknown", decision: "block"},
		{name: "device_not_owned", host: "mail.test", user: alice, claims: map[string]any{"deviceid": "d-bob"},
			status: 403, reason: policy.ReasonDeviceNotOwned, policy: "mobile-risk", risk: "secured", decision: "block"},
		{name: "platform_blocked", host: "mail.test", user: alice, claims: map[string]any{"deviceid": "d-win"},
			status: 403, reason: policy.ReasonPlatformBlocked, policy: "mobile-risk", risk: "secured", decision: "block"},
		{name: "os_too_old", host: "mail.test", user: alice, claims: map[string]any{"deviceid": "d-oldos"},
			status: 403, reason: policy.ReasonOSTooOld, policy: "mobile-risk", risk: "secured", decision: "block"},
		{name: "no_policy", host: "other.test", user: alice, claims: map[string]any{"deviceid": "d-ok"},
			status: 403, reason: policy.ReasonNoPolicy, policy: "", risk: "secured", decision: "block"},
	}
	covered := map[policy.Reason]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.upstream.received())
			tok := h.token(t, tc.user, tc.claims)
			resp, body := h.do(t, tc.host, "/inbox?x=1", bearerHeader(tok, "Accept", "application/json"))
			require.Equal(t, tc.status, resp.StatusCode, body)
			reqID := resp.Header.Get("X-Request-Id")
			require.NotEmpty(t, reqID)

			if tc.status == http.StatusOK {
				assert.Equal(t, "hello from upstream", body)
				got := h.upstream.last(t)
				assert.Equal(t, "/inbox", got.URL.Path)
				assert.Equal(t, tc.user, got.Header.Get("X-Forwarded-User"))
				assert.Equal(t, tc.risk, got.Header.Get("X-Riskgate-Risk"))
				assert.Equal(t, tc.decision, got.Header.Get("X-Riskgate-Decision"))
				assert.Equal(t, reqID, got.Header.Get("X-Request-Id"))
			} else {
				assert.Len(t, h.upstream.received(), before, "a blocked request reached the upstream")
				var got map[string]any
				require.NoError(t, json.Unmarshal([]byte(body), &got))
				device, _ := tc.claims["deviceid"].(string)
				assert.Equal(t, map[string]any{
					"decision": "block", "reason": string(tc.reason), "policy": tc.policy,
					"risk": tc.risk, "device_id": device, "request_id": reqID,
				}, got)
				assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			}

			// Exactly one audit line for this request.
			var lines []map[string]any
			for _, l := range h.logs.lines(t, "decision") {
				if l["request_id"] == reqID {
					lines = append(lines, l)
				}
			}
			require.Len(t, lines, 1)
			assert.Equal(t, string(tc.reason), lines[0]["reason"])
			assert.Equal(t, tc.decision, lines[0]["decision"])
			assert.Equal(t, tc.user, lines[0]["user"])
			assert.Equal(t, tc.policy, lines[0]["policy"])

			route := map[string]string{"mail.test": "mail", "other.test": "other"}[tc.host]
			assert.Equal(t, 1.0, testutil.ToFloat64(h.metrics.requests.WithLabelValues(route, tc.decision, string(tc.reason))))
			covered[tc.reason] = true
		})
	}
	for _, r := range policy.Reasons() {
		assert.True(t, covered[r], "reason %s not covered", r)
	}
}

func TestBadTokensAreRefused(t *testing.T) {
	h := newHarness(t, testConfig)
	iss := h.issuer
	valid := h.token(t, alice, map[string]any{"deviceid": "d-ok"})
	claims := func(edit func(map[string]any)) map[string]any {
		c := iss.Claims(alice, "riskgate")
		c["deviceid"] = "d-ok"
		edit(c)
		return c
	}
	tampered := func() string {
		parts := strings.Split(valid, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		require.NoError(t, err)
		payload = bytes.Replace(payload, []byte(alice), []byte(bob), 1)
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}
	tests := []struct {
		name  string
		token string
	}{
		{"expired", iss.Sign(t, claims(func(c map[string]any) {
			c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		}))},
		{"wrong issuer", iss.Sign(t, claims(func(c map[string]any) { c["iss"] = "https://evil.example" }))},
		{"wrong audience", iss.Sign(t, claims(func(c map[string]any) { c["aud"] = "someone-else" }))},
		{"alg none", iss.Unsigned(t, claims(func(map[string]any) {}))},
		{"unknown kid", iss.SignWithKey(t, "unknown-kid", claims(func(map[string]any) {}))},
		{"wrong signing key", iss.SignWithKey(t, iss.KeyID, claims(func(map[string]any) {}))},
		{"tampered payload", tampered()},
		{"garbage", "this-is-not-a-jwt"},
		{"no user claim", iss.Sign(t, claims(func(c map[string]any) { delete(c, "email") }))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.do(t, "mail.test", "/", bearerHeader(tc.token, "Accept", "text/html"))
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, body)
			assert.Equal(t, `Bearer realm="riskgate", error="invalid_token"`, resp.Header.Get("WWW-Authenticate"))
			assert.Contains(t, body, resp.Header.Get("X-Request-Id"))
		})
	}
	assert.Empty(t, h.upstream.received(), "a request with a bad token reached the upstream")

	// The valid token still works, so the refusals above were the tokens'.
	resp, _ := h.do(t, "mail.test", "/", bearerHeader(valid))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestNoCredentials(t *testing.T) {
	login := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "login page") })
	tests := []struct {
		name      string
		reserved  http.Handler
		accept    string
		status    int
		location  string
		challenge string
	}{
		{name: "browser with login", reserved: login, accept: "text/html,application/xhtml+xml", status: http.StatusFound,
			location: "/.riskgate/login?rd=%2Finbox%3Fa%3D1%26b%3D2"},
		{name: "browser without login", accept: "text/html", status: http.StatusUnauthorized, challenge: `Bearer realm="riskgate"`},
		{name: "api client", reserved: login, accept: "application/json", status: http.StatusUnauthorized, challenge: `Bearer realm="riskgate"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testConfig, func(o *Options, _ *SnapshotOptions) { o.Reserved = tc.reserved })
			resp, body := h.do(t, "mail.test", "/inbox?a=1&b=2", http.Header{"Accept": {tc.accept}})
			assert.Equal(t, tc.status, resp.StatusCode, body)
			assert.Equal(t, tc.location, resp.Header.Get("Location"))
			assert.Equal(t, tc.challenge, resp.Header.Get("WWW-Authenticate"))
			assert.Empty(t, h.upstream.received())
		})
	}
}

func TestSpoofedHeadersNeverReachUpstream(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok", "groups": []string{"staff", "mobile"}})
	hdr := bearerHeader(tok,
		"X-Forwarded-User", "mallory@evil.example",
		"X-Forwarded-Email", "mallory@evil.example",
		"X-Forwarded-Groups", "admins",
		"X-Riskgate-Device-Id", "d-forged",
		"X-Riskgate-Risk", "secured",
		"X-Riskgate-Decision", "allow",
		"X-Request-Id", "forged-id",
		"Cookie", "_riskgate=sealed-session; theme=dark",
		"Cookie", "lang=en",
	)
	hdr["X-Forwarded_user"] = []string{"mallory-underscore"}
	hdr["X-Riskgate_Risk"] = []string{"secured"}
	// Naming our headers in Connection must not make ReverseProxy drop them.
	hdr["Connection"] = []string{"X-Forwarded-User, X-Riskgate-Decision"}
	resp, body := h.do(t, "mail.test", "/", hdr)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)

	got := h.upstream.last(t).Header
	assert.Equal(t, []string{alice}, got["X-Forwarded-User"])
	assert.Equal(t, []string{alice}, got["X-Forwarded-Email"])
	assert.Equal(t, []string{"staff,mobile"}, got["X-Forwarded-Groups"])
	assert.Equal(t, []string{"d-ok"}, got["X-Riskgate-Device-Id"])
	assert.Equal(t, []string{"secured"}, got["X-Riskgate-Risk"])
	assert.Equal(t, []string{"allow"}, got["X-Riskgate-Decision"])
	assert.Equal(t, []string{resp.Header.Get("X-Request-Id")}, got["X-Request-Id"])
	assert.NotEqual(t, "forged-id", resp.Header.Get("X-Request-Id"))
	assert.Equal(t, []string{resp.Header.Get("X-Request-Id")}, resp.Header.Values("X-Request-Id"), "client sees riskgate's id only")
	assert.Empty(t, got["X-Forwarded_user"])
	assert.Empty(t, got["X-Riskgate_Risk"])
	assert.Equal(t, []string{"theme=dark; lang=en"}, got["Cookie"])
	assert.Equal(t, "mail.test", got.Get("X-Forwarded-Host"))
	assert.Equal(t, "127.0.0.1", got.Get("X-Forwarded-For"))

	t.Run("headers riskgate has no value for", func(t *testing.T) {
		// No groups and no email claim: the spoofed values must not survive
		// just because riskgate sets nothing in their place.
		tok := h.issuer.Sign(t, map[string]any{
			"iss": h.issuer.URL, "aud": "riskgate", "sub": "s", "upn": alice, "email": alice,
			"exp": time.Now().Add(time.Hour).Unix(), "deviceid": "d-ok",
		})
		resp, _ := h.do(t, "mail.test", "/", bearerHeader(tok, "X-Forwarded-Groups", "admins", "X-Forwarded-Groups", "root"))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, h.upstream.last(t).Header["X-Forwarded-Groups"])
	})

	t.Run("blocked request with spoofed headers", func(t *testing.T) {
		tok := h.token(t, alice, map[string]any{"deviceid": "d-high"})
		resp, _ := h.do(t, "mail.test", "/", bearerHeader(tok, "X-Riskgate-Decision", "allow", "X-Riskgate-Risk", "secured"))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
}

func TestNoRoute(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})

	resp, body := h.do(t, "unknown.test", "/", bearerHeader(tok, "Accept", "application/json"))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	assert.Equal(t, "not_found", got["error"])
	assert.Equal(t, resp.Header.Get("X-Request-Id"), got["request_id"])

	resp, body = h.do(t, "unknown.test", "/", bearerHeader(tok))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"))
	assert.Contains(t, body, resp.Header.Get("X-Request-Id"))
	assert.Empty(t, h.upstream.received())
}

func TestReservedPaths(t *testing.T) {
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Reserved handlers see the request after stripping, too.
			_, _ = io.WriteString(w, name+" "+r.Header.Get("X-Forwarded-User"))
		})
	}
	h := newHarness(t, testConfig, func(o *Options, _ *SnapshotOptions) {
		o.Reserved = handler("reserved")
		o.Webhook = handler("webhook")
	})
	bare := newHarness(t, testConfig)
	tests := []struct {
		name   string
		h      *harness
		path   string
		status int
		body   string
	}{
		{"login", h, "/.riskgate/login?rd=%2F", 200, "reserved "},
		{"callback", h, "/.riskgate/callback", 200, "reserved "},
		{"logout", h, "/.riskgate/logout", 200, "reserved "},
		{"webhook", h, "/.riskgate/webhook/acme", 200, "webhook "},
		{"webhook without vendor", h, "/.riskgate/webhook/", 404, ""},
		{"other reserved path", h, "/.riskgate/secret", 404, ""},
		{"reserved root", h, "/.riskgate", 404, ""},
		{"login not configured", bare, "/.riskgate/login", 404, ""},
		{"webhook not configured", bare, "/.riskgate/webhook/acme", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tc.h.do(t, "mail.test", tc.path, http.Header{"X-Forwarded-User": {"mallory"}})
			assert.Equal(t, tc.status, resp.StatusCode)
			if tc.body != "" {
				assert.Equal(t, tc.body, body)
			}
			assert.Empty(t, tc.h.upstream.received())
		})
	}
}

// serveFrom runs a request through the handler directly, from a chosen peer
// address (the upstream is still reached over a real connection).
func (h *harness) serveFrom(t testing.TB, remoteAddr, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.RemoteAddr = remoteAddr
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.proxy.ServeHTTP(rec, req)
	return rec
}

func TestHeaderDeviceSourceOnlyFromTrustedPeers(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, nil)
	tests := []struct {
		name   string
		peer   string
		status int
		device string
	}{
		{"trusted peer", "10.1.2.3:40000", http.StatusOK, "d-ok"},
		{"untrusted peer", "192.0.2.7:40000", http.StatusForbidden, ""},
		{"loopback is not trusted", "127.0.0.1:40000", http.StatusForbidden, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.serveFrom(t, tc.peer, "http://mail.test/", bearerHeader(tok, "X-Device-Id", "d-ok", "Accept", "application/json"))
			assert.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.status == http.StatusForbidden {
				assert.Contains(t, rec.Body.String(), `"reason":"device_missing"`)
			} else {
				assert.Equal(t, tc.device, h.upstream.last(t).Header.Get("X-Riskgate-Device-Id"))
			}
		})
	}
}

func TestQueryDeviceIDNeedsOwnerMatch(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, nil)
	tests := []struct {
		name   string
		target string
		peer   string
		header http.Header
		status int
		reason string
	}{
		{name: "own device", target: "http://lax.test/Microsoft-Server-ActiveSync?Cmd=Sync&DeviceId=d-ok", peer: "192.0.2.7:1", status: http.StatusOK},
		{name: "another user's device", target: "http://lax.test/Microsoft-Server-ActiveSync?Cmd=Sync&DeviceId=d-bob", peer: "192.0.2.7:1",
			status: http.StatusForbidden, reason: "device_not_owned"},
		{name: "device unknown to vendors", target: "http://lax.test/?DeviceId=d-nobody", peer: "192.0.2.7:1",
			status: http.StatusForbidden, reason: "device_unknown"},
		// The policy does not require an owner match: a trusted source's id
		// counts even for another user's device, a self-asserted one never.
		{name: "trusted header, another user's device", target: "http://lax.test/", peer: "10.0.0.1:1",
			header: http.Header{"X-Device-Id": {"d-bob"}}, status: http.StatusOK},
		{name: "repeated query parameter", target: "http://lax.test/?DeviceId=d-ok&DeviceId=d-bob", peer: "192.0.2.7:1",
			status: http.StatusForbidden, reason: "device_missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := bearerHeader(tok, "Accept", "application/json")
			for k, v := range tc.header {
				hdr[k] = v
			}
			rec := h.serveFrom(t, tc.peer, tc.target, hdr)
			assert.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.reason != "" {
				assert.Contains(t, rec.Body.String(), `"reason":"`+tc.reason+`"`)
			}
		})
	}
}

func TestReportOnly(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-low"})
	resp, body := h.do(t, "trial.test", "/", bearerHeader(tok))
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	got := h.upstream.last(t)
	assert.Equal(t, "report_only_block", got.Header.Get("X-Riskgate-Decision"))
	assert.Equal(t, "low", got.Header.Get("X-Riskgate-Risk"))

	lines := h.logs.lines(t, "decision")
	require.Len(t, lines, 1)
	assert.Equal(t, "report_only_block", lines[0]["decision"])
	assert.Equal(t, []any{"trial-report"}, lines[0]["report_only_failed"])
	assert.Equal(t, "risk_too_high", lines[0]["report_only_reason"])

	m := h.metrics
	assert.Equal(t, 1.0, testutil.ToFloat64(m.requests.WithLabelValues("trial", "report_only_block", "risk_too_high")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.policyEvaluations.WithLabelValues("trial-report", "report-only", "fail")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.policyEvaluations.WithLabelValues("trial-enforce", "enforce", "pass")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.policyEvaluations.WithLabelValues("mobile-risk", "enforce", "not_applied")))
}

func TestBlockPageHTML(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-high"})
	resp, body := h.do(t, "mail.test", "/", bearerHeader(tok, "Accept", "text/html"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, body, "risk_too_high")
	assert.Contains(t, body, "Mail")
	assert.Contains(t, body, resp.Header.Get("X-Request-Id"))
}

// failingPages is a PageRenderer that always fails, to check the fallback.
type failingPages struct{}

func (failingPages) RenderPage(io.Writer, Page) error { return io.ErrShortWrite }

func TestPageRendererFallback(t *testing.T) {
	h := newHarness(t, testConfig, func(_ *Options, s *SnapshotOptions) { s.Pages = failingPages{} })
	tok := h.token(t, alice, map[string]any{"deviceid": "d-high"})
	resp, body := h.do(t, "mail.test", "/", bearerHeader(tok, "Accept", "text/html"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, body, resp.Header.Get("X-Request-Id"))
	assert.Len(t, h.logs.lines(t, "render page"), 1)
}

func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr
}

func TestUpstreamDown(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; the proxy's timeout ends it
	}))
	t.Cleanup(hang.Close)
	tests := []struct {
		name     string
		upstream string
	}{
		{"connection refused", closedPort(t)},
		{"response header timeout", hang.URL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			config := strings.Replace(testConfig, "upstream_timeout: 2s", "upstream_timeout: 200ms", 1)
			config = strings.Replace(config, "upstream: {{UPSTREAM}}\n    display_name", "upstream: "+tc.upstream+"\n    display_name", 1)
			h := newHarness(t, config)
			tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})

			resp, body := h.do(t, "mail.test", "/", bearerHeader(tok, "Accept", "application/json"))
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
			var got map[string]any
			require.NoError(t, json.Unmarshal([]byte(body), &got))
			assert.Equal(t, "upstream_unavailable", got["error"])
			assert.Equal(t, resp.Header.Get("X-Request-Id"), got["request_id"])

			resp, body = h.do(t, "mail.test", "/", bearerHeader(tok, "Accept", "text/html"))
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
			assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
			assert.Contains(t, body, resp.Header.Get("X-Request-Id"))

			assert.Equal(t, 2.0, testutil.ToFloat64(h.metrics.upstreamErrors.WithLabelValues("mail")))
			assert.Len(t, h.logs.lines(t, "upstream error"), 2)
		})
	}
}

// panicking is an Authenticator that panics, standing in for any bug.
type panicking struct{}

func (panicking) Authenticate(*http.Request) (*Identity, error) { panic("boom") }

func TestPanicIsRecovered(t *testing.T) {
	h := newHarness(t, testConfig, func(_ *Options, s *SnapshotOptions) {
		s.Authenticators = []Authenticator{panicking{}}
	})
	resp, body := h.do(t, "mail.test", "/", http.Header{"Accept": {"application/json"}})
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Contains(t, body, resp.Header.Get("X-Request-Id"))
	lines := h.logs.lines(t, "panic serving request")
	require.Len(t, lines, 1)
	assert.Equal(t, resp.Header.Get("X-Request-Id"), lines[0]["request_id"])

	// The server is still serving.
	resp, _ = h.do(t, "mail.test", "/", nil)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
}

func TestSnapshotSwap(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-low"})
	resp, _ := h.do(t, "mail.test", "/", bearerHeader(tok))
	require.Equal(t, http.StatusOK, resp.StatusCode)

	stricter := strings.Replace(testConfig, "max_risk: low\n    min_os", "max_risk: secured\n    min_os", 1)
	cfg, err := policy.Parse("test.yaml", []byte(strings.NewReplacer("{{ISSUER}}", h.issuer.URL, "{{UPSTREAM}}", h.upstream.URL).Replace(stricter)), nil)
	require.NoError(t, err)
	set, err := policy.Compile(cfg)
	require.NoError(t, err)
	old := h.proxy.Snapshot()
	snap, err := NewSnapshot(SnapshotOptions{Policy: set, Authenticators: old.auth, Metrics: h.metrics})
	require.NoError(t, err)
	h.proxy.Store(snap)

	resp, _ = h.do(t, "mail.test", "/", bearerHeader(tok))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Same(t, set, h.proxy.Snapshot().Policy())
}

func TestNoSnapshot(t *testing.T) {
	p := New(Options{Risk: riskcache.New(riskcache.Options{})})
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://mail.test/", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotEmpty(t, rec.Header().Get("X-Request-Id"))
}

// TestNonCanonicalPathsRefused: a path that one route matches but that an
// upstream normalises to another resource never reaches the upstream.
func TestNonCanonicalPathsRefused(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})
	for _, target := range []string{"/docs/../ecp/", "/%2e%2e/ecp", "//ecp/", "/docs%2F..%2Fecp", "/ecp%5C", "/a/./b"} {
		t.Run(target, func(t *testing.T) {
			resp, body := h.do(t, "mail.test", target, bearerHeader(tok, "Accept", "application/json"))
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
			assert.Contains(t, body, "bad_path")
		})
	}
	assert.Empty(t, h.upstream.received())
}

// TestUntrustedDeviceHeaderNotForwarded: a device header from a peer
// outside trusted_cidrs is neither used nor passed to the upstream.
func TestUntrustedDeviceHeaderNotForwarded(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})
	for _, tc := range []struct {
		peer string
		want string
	}{
		{"192.0.2.7:40000", ""},
		{"10.1.2.3:40000", "spoofed-or-not"},
	} {
		rec := h.serveFrom(t, tc.peer, "http://mail.test/", bearerHeader(tok, "X-Device-Id", "spoofed-or-not", "Accept", "application/json"))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		got := h.upstream.last(t).Header
		assert.Equal(t, tc.want, got.Get("X-Device-Id"), tc.peer)
		assert.Equal(t, "d-ok", got.Get("X-Riskgate-Device-Id"))
	}
}
