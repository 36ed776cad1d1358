package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/riskgate/riskgate/e2e/dextest"
	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
)

// upstreamRecorder is an upstream app that remembers the headers of the
// requests riskgate forwarded to it.
type upstreamRecorder struct {
	mu   sync.Mutex
	reqs []http.Header
}

func (u *upstreamRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, r.Header.Clone())
	u.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "upstream app: %s %s for %s\n", r.Method, r.URL.RequestURI(), r.Header.Get("X-Forwarded-User"))
}

// last returns the headers of the last forwarded request and how many
// requests there were.
func (u *upstreamRecorder) last() (http.Header, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return nil, 0
	}
	return u.reqs[len(u.reqs)-1], len(u.reqs)
}

// deviceHeader sets the device header a trusted front proxy would set, on
// requests to riskgate only.
type deviceHeader struct {
	host, device string
}

func (d deviceHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == d.host {
		r = r.Clone(r.Context())
		r.Header.Set("X-Device-Id", d.device)
	}
	return http.DefaultTransport.RoundTrip(r)
}

const riskgateDexConfig = `server:
  listen: {{PROXY}}
  admin_listen: {{ADMIN}}
  shutdown_timeout: 5s
auth:
  issuer: {{ISSUER}}
  client_id: riskgate
  client_secret: ${E2E_CLIENT_SECRET}
  redirect_url: http://{{PROXY}}/.riskgate/callback
  scopes: [openid, email, profile, groups]
  audiences: [riskgate]
  user_claim: email
  groups_claim: groups
  session:
    secret: e2e-session-secret-0123456789abcdef
    ttl: 1h
devices:
  sources:
    # Dex issues no device claim: a trusted front proxy's header (here the
    # test itself, from 127.0.0.1), or the ActiveSync-style query parameter,
    # which counts only when the vendor lists the device as the user's.
    - header: {name: X-Device-Id, trusted_cidrs: [127.0.0.1/32]}
    - query: DeviceId
risk:
  max_age: 10m
  vendors:
    - name: acme
      type: generic
      url: {{VENDOR}}/v1/devices
      token: vendor-token
      interval: 1s
routes:
  - name: app
    path_prefix: /app
    upstream: {{UPSTREAM}}
    display_name: App
policies:
  - name: app-device-risk
    mode: enforce
    routes: [app]
    max_risk: low
    require_device: true
    require_owner_match: true
`

// TestRiskgateWithDex runs the riskgate binary against Dex, an identity
// provider riskgate did not write: the browser sign-in through Dex's real
// login form, blocking when the vendor reports the device high risk and
// coming back when it is secured, and Dex ID tokens as bearer tokens.
func TestRiskgateWithDex(t *testing.T) {
	start := time.Now()
	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)
	proxyURL := "http://" + proxyAddr
	callbackURL := proxyURL + "/.riskgate/callback"
	const clientSecret = "riskgate-e2e-client-secret"

	dex := dextest.Start(t, dextest.Options{
		Clients: []dextest.Client{{ID: "riskgate", Secret: clientSecret, RedirectURIs: []string{callbackURL}}},
	})
	store := vendorsim.NewStore(time.Now)
	store.Set(vendorsim.Device{ID: "alice-phone", User: dextest.DefaultEmail, Platform: "ios", OSVersion: "17.4", Level: policy.LevelSecured})
	store.Set(vendorsim.Device{ID: "bob-phone", User: "bob@corp.example", Platform: "android", OSVersion: "14", Level: policy.LevelSecured})
	vendorMux := http.NewServeMux()
	vendorMux.Handle("GET /v1/devices", vendorsim.NewGeneric(store, "vendor-token"))
	vendor := httptest.NewServer(vendorMux)
	t.Cleanup(vendor.Close)
	var upstream upstreamRecorder
	up := httptest.NewServer(&upstream)
	t.Cleanup(up.Close)

	cfg := strings.NewReplacer(
		"{{PROXY}}", proxyAddr, "{{ADMIN}}", adminAddr, "{{ISSUER}}", dex.URL,
		"{{VENDOR}}", vendor.URL, "{{UPSTREAM}}", up.URL,
	).Replace(riskgateDexConfig)
	cfgPath := filepath.Join(t.TempDir(), "riskgate.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	t.Setenv("E2E_CLIENT_SECRET", clientSecret) // ${ENV} expansion, as in production
	p := startRiskgate(t, "serve", "--config", cfgPath, "--log-level", "debug")
	p.waitReady(t, adminAddr, 30*time.Second)

	t.Run("browser sign-in through Dex", func(t *testing.T) {
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		browser := &http.Client{Jar: jar, Transport: deviceHeader{host: proxyAddr, device: "alice-phone"}, Timeout: 10 * time.Second}
		noFollow := *browser
		noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		get := func(c *http.Client, u string) (*http.Response, string) {
			t.Helper()
			req, err := http.NewRequest(http.MethodGet, u, nil)
			require.NoError(t, err)
			req.Header.Set("Accept", "text/html,application/xhtml+xml")
			resp, err := c.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			return resp, string(body)
		}

		signIn := time.Now()
		// No session: a browser is sent to riskgate's login path...
		resp, _ := get(&noFollow, proxyURL+"/app/inbox?folder=1")
		require.Contains(t, []int{http.StatusFound, http.StatusSeeOther}, resp.StatusCode)
		loginURL, err := resp.Location()
		require.NoError(t, err)
		assert.Equal(t, "/.riskgate/login", loginURL.Path)
		// ...which sends it to Dex, whose real login form DexLogin fills in.
		answer, err := dextest.DexLogin(browser, loginURL.String(), dextest.DefaultEmail, dextest.DefaultPassword)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(answer, callbackURL+"?"), "Dex answers riskgate's callback: %s", answer)
		require.NotContains(t, answer, "error=")

		// The callback sets the session and returns to the page first asked.
		resp, body := get(browser, answer)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, proxyURL+"/app/inbox?folder=1", resp.Request.URL.String())
		assert.Contains(t, body, "upstream app: GET /app/inbox?folder=1 for "+dextest.DefaultEmail)
		h, _ := upstream.last()
		require.NotNil(t, h)
		assert.Equal(t, dextest.DefaultEmail, h.Get("X-Forwarded-User"))
		assert.Equal(t, dextest.DefaultEmail, h.Get("X-Forwarded-Email"))
		assert.Equal(t, "staff", h.Get("X-Forwarded-Groups"))
		assert.Equal(t, "alice-phone", h.Get("X-Riskgate-Device-Id"))
		assert.Equal(t, "secured", h.Get("X-Riskgate-Risk"))
		assert.Equal(t, "allow", h.Get("X-Riskgate-Decision"))
		assert.Empty(t, h.Get("Cookie"), "riskgate's cookies are not forwarded upstream")
		t.Logf("signed in through Dex in %s", time.Since(signIn).Round(time.Millisecond))

		// The vendor reports the phone high risk: blocked after a sync.
		require.True(t, store.SetLevel("alice-phone", policy.LevelHigh))
		flipped := time.Now()
		var blockBody, blockReqID string
		poll(t, 15*time.Second, 100*time.Millisecond, "blocked after alice-phone turned high", func() error {
			resp, body := get(&noFollow, proxyURL+"/app/")
			if resp.StatusCode != http.StatusForbidden {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			blockBody, blockReqID = body, resp.Header.Get("X-Request-Id")
			return nil
		})
		t.Logf("blocked %s after the vendor change", time.Since(flipped).Round(time.Millisecond))
		assert.Contains(t, blockBody, "This device can&#39;t open App right now")
		assert.Contains(t, blockBody, "risk_too_high")
		assert.Contains(t, blockBody, "app-device-risk")
		assert.Contains(t, blockBody, "(acme) rates this device&#39;s risk as high")
		assert.Contains(t, blockBody, "App only opens on devices rated low or lower")
		require.NotEmpty(t, blockReqID)
		assert.Contains(t, blockBody, "<dd>"+blockReqID+"</dd>", "the page shows the request id")

		// Remediated: access comes back with the same session.
		require.True(t, store.SetLevel("alice-phone", policy.LevelSecured))
		flipped = time.Now()
		poll(t, 15*time.Second, 100*time.Millisecond, "allowed after alice-phone turned secured", func() error {
			resp, body := get(&noFollow, proxyURL+"/app/")
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d, location %q: %.200s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			return nil
		})
		t.Logf("allowed again %s after the vendor change", time.Since(flipped).Round(time.Millisecond))
	})

	t.Run("Dex ID token as bearer", func(t *testing.T) {
		provider, err := oidc.NewProvider(t.Context(), dex.URL)
		require.NoError(t, err)
		oc := oauth2.Config{
			ClientID: "riskgate", ClientSecret: clientSecret, RedirectURL: callbackURL,
			Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"},
		}
		verifier := oauth2.GenerateVerifier()
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		answer, err := dextest.DexLogin(&http.Client{Jar: jar, Timeout: 10 * time.Second},
			oc.AuthCodeURL("native-state", oauth2.S256ChallengeOption(verifier)), dextest.DefaultEmail, dextest.DefaultPassword)
		require.NoError(t, err)
		u, err := url.Parse(answer)
		require.NoError(t, err)
		require.Equal(t, "native-state", u.Query().Get("state"))
		tok, err := oc.Exchange(t.Context(), u.Query().Get("code"), oauth2.VerifierOption(verifier))
		require.NoError(t, err)
		idToken, ok := tok.Extra("id_token").(string)
		require.True(t, ok, "Dex returns an ID token")

		api := &http.Client{Timeout: 10 * time.Second}
		call := func(path, bearer string) (*http.Response, []byte) {
			t.Helper()
			req, err := http.NewRequest(http.MethodGet, proxyURL+path, nil)
			require.NoError(t, err)
			req.Header.Set("Accept", "application/json")
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			resp, err := api.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			return resp, body
		}
		type blockJSON struct {
			Decision, Reason, Policy, Risk string
			DeviceID                       string `json:"device_id"`
			RequestID                      string `json:"request_id"`
		}

		// Her own device, named in the query as ActiveSync clients do.
		_, before := upstream.last()
		resp, body := call("/app/Microsoft-Server-ActiveSync?DeviceId=alice-phone&Cmd=Sync", idToken)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		h, after := upstream.last()
		require.Equal(t, before+1, after)
		assert.Equal(t, dextest.DefaultEmail, h.Get("X-Forwarded-User"))
		assert.Equal(t, dextest.DefaultEmail, h.Get("X-Forwarded-Email"))
		assert.Equal(t, "alice-phone", h.Get("X-Riskgate-Device-Id"))

		for _, tc := range []struct {
			name, path, bearer string
			status             int
			reason             string
		}{
			{"no device", "/app/", idToken, http.StatusForbidden, string(policy.ReasonDeviceMissing)},
			{"someone else's device", "/app/?DeviceId=bob-phone", idToken, http.StatusForbidden, string(policy.ReasonDeviceNotOwned)},
			{"no token", "/app/?DeviceId=alice-phone", "", http.StatusUnauthorized, ""},
			{"tampered token", "/app/?DeviceId=alice-phone", idToken[:len(idToken)-4] + "AAAA", http.StatusUnauthorized, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, before := upstream.last()
				resp, body := call(tc.path, tc.bearer)
				require.Equal(t, tc.status, resp.StatusCode, string(body))
				_, after := upstream.last()
				assert.Equal(t, before, after, "not forwarded")
				if tc.status == http.StatusUnauthorized {
					assert.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer"), resp.Header.Get("WWW-Authenticate"))
					return
				}
				var b blockJSON
				require.NoError(t, json.Unmarshal(body, &b), string(body))
				assert.Equal(t, "block", b.Decision)
				assert.Equal(t, tc.reason, b.Reason)
				assert.Equal(t, "app-device-risk", b.Policy)
				assert.NotEmpty(t, b.RequestID)
				assert.Equal(t, resp.Header.Get("X-Request-Id"), b.RequestID)
			})
		}
	})
	t.Logf("Dex end-to-end test took %s", time.Since(start).Round(time.Millisecond))
}
