package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/oidctest"
	"github.com/riskgate/riskgate/policy"
)

// slowUpstream answers a request only once release is closed; arrived
// receives each request's path as it comes in.
func slowUpstream(t *testing.T) (srv *httptest.Server, arrived chan string, release chan struct{}) {
	arrived, release = make(chan string, 8), make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(upstreamSeen{Path: r.URL.Path, User: r.Header.Get("X-Forwarded-User"),
			Decision: r.Header.Get("X-Riskgate-Decision"), Risk: r.Header.Get("X-Riskgate-Risk")})
	}))
	t.Cleanup(srv.Close)
	return srv, arrived, release
}

// waitDone waits up to d for serveConfig to return.
func (s *server) waitDone(d time.Duration) (error, bool) {
	select {
	case err := <-s.done:
		s.stopped, s.result = true, err
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// TestShutdown is not parallel: it checks that no syncer goroutine is left,
// which needs no other riskgate running in the process.
func TestShutdown(t *testing.T) {
	iss := oidctest.New(t)
	v := newVendor(t)
	v.set("dev-ok", policy.LevelSecured, testUser, "ios", "17.4")
	tok := token(t, iss, testUser, nil, "dev-ok")

	start := func(t *testing.T, shutdownTimeout string) (*server, chan string, chan struct{}) {
		up, arrived, release := slowUpstream(t)
		cfg := renderConfig(configParams{Issuer: iss.URL, Upstream: up.URL,
			Vendors: vendorYAML("acme", v.url(), 50*time.Millisecond, false), Policies: policyYAML("p", "low")})
		cfg = strings.Replace(cfg, "shutdown_timeout: 10s", "shutdown_timeout: "+shutdownTimeout, 1)
		path := filepath.Join(t.TempDir(), "riskgate.yaml")
		writeFile(t, path, cfg)
		s := startServe(t, path)
		s.waitReady(t)
		return s, arrived, release
	}
	inFlight := func(t *testing.T, s *server, arrived chan string) chan error {
		res := make(chan error, 1)
		go func() {
			r, err := do(s.client, s.proxyURL+"/slow", tok)
			if err == nil && (r.Status != http.StatusOK || r.Seen.Decision != "allow") {
				err = assert.AnError
				t.Errorf("drained request: %d %s", r.Status, r.Body)
			}
			res <- err
		}()
		select {
		case p := <-arrived:
			require.Equal(t, "/slow", p)
		case <-time.After(waitTimeout):
			t.Fatal("request never reached the upstream")
		}
		return res
	}
	proxyClosed := func(s *server) func() bool {
		addr := strings.TrimPrefix(s.proxyURL, "http://")
		return func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return true
			}
			c.Close()
			return false
		}
	}

	t.Run("in-flight request is drained", func(t *testing.T) {
		s, arrived, release := start(t, "10s")
		res := inFlight(t, s, arrived)

		require.True(t, goroutineIn("riskcache.(*Syncer).Run(", ""), "the vendor syncer runs")
		s.cancel() // SIGTERM
		require.Eventually(t, proxyClosed(s), waitTimeout, pollInterval, "the proxy stops accepting connections")
		_, done := s.waitDone(0)
		require.False(t, done, "serveConfig returned with a request in flight")

		close(release)
		select {
		case err := <-res:
			require.NoError(t, err, "the in-flight request completes")
		case <-time.After(waitTimeout):
			t.Fatal("in-flight request never completed")
		}
		err, done := s.waitDone(5 * time.Second)
		require.True(t, done, "serveConfig returns promptly once drained")
		require.NoError(t, err)

		assert.False(t, goroutineIn("riskcache.(*Syncer).Run(", ""), "a vendor syncer is still running")
		assert.False(t, goroutineIn("cmd/riskgate.(*syncers).Run(", ""), "the syncer supervisor is still running")
		assert.False(t, goroutineIn("cmd/riskgate.(*reloader).Run(", ""), "the reloader is still running")
	})

	t.Run("shutdown_timeout bounds the drain", func(t *testing.T) {
		s, arrived, release := start(t, "300ms")
		defer close(release)
		res := inFlight(t, s, arrived)
		began := time.Now()
		s.cancel()
		err, done := s.waitDone(10 * time.Second)
		require.True(t, done, "serveConfig returns after shutdown_timeout")
		require.ErrorContains(t, err, "requests still in flight")
		assert.Less(t, time.Since(began), 5*time.Second)
		select {
		case err := <-res:
			assert.Error(t, err, "the request cut off at the timeout fails")
		case <-time.After(waitTimeout):
			t.Fatal("the cut-off request never returned")
		}
	})
}

// TestStateFile: a restart with the vendor down serves the last known risk.
func TestStateFile(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	v := newVendor(t)
	v.set("dev-med", policy.LevelMedium, testUser, "android", "14")
	v.set("dev-low", policy.LevelLow, testUser, "ios", "17.4")
	up := newUpstream(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state", "risk.json")
	require.NoError(t, os.Mkdir(filepath.Dir(state), 0o700))
	path := filepath.Join(dir, "riskgate.yaml")
	writeFile(t, path, renderConfig(configParams{Issuer: iss.URL, Upstream: up.URL,
		Vendors:  vendorYAML("acme", v.url(), 50*time.Millisecond, false),
		Policies: policyYAML("p", "low"),
		Risk:     "  state_file: " + state + "\n  state_interval: 1h\n",
	}))
	medTok := token(t, iss, testUser, nil, "dev-med")
	lowTok := token(t, iss, testUser, nil, "dev-low")

	s := startServe(t, path)
	s.waitReady(t)
	assert.Equal(t, http.StatusOK, mustDo(t, s.client, s.proxyURL+"/", lowTok).Status)
	require.NoError(t, s.stop())
	require.FileExists(t, state, "the state is saved on shutdown")

	v.down.Store(true)
	before := v.requests.Load()
	s = startServe(t, path)
	code, body := s.adminGet(t, "/readyz")
	assert.Equal(t, http.StatusOK, code, "ready from the restored state: %s", body)
	require.Eventually(t, func() bool { return v.requests.Load() > before }, waitTimeout, pollInterval, "the vendor is polled")
	require.Eventually(t, func() bool {
		return metricOr0(s.metrics(t), "riskgate_risk_sync_total", "vendor=acme", "result=error") > 0
	}, waitTimeout, pollInterval, "the sync fails: the vendor is down")
	code, _ = s.adminGet(t, "/readyz")
	assert.Equal(t, http.StatusOK, code, "still ready with the vendor down (data within max_age)")

	r := mustDo(t, s.client, s.proxyURL+"/", medTok)
	require.Equal(t, http.StatusForbidden, r.Status, r.Body)
	assert.Equal(t, "risk_too_high", r.Block["reason"], "decided on the restored risk, not device_unknown")
	assert.Equal(t, "medium", r.Block["risk"])
	r = mustDo(t, s.client, s.proxyURL+"/", lowTok)
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	assert.Equal(t, "low", r.Seen.Risk)
	assert.Contains(t, s.logs.String(), "risk state restored")
	require.NoError(t, s.stop())
}
