package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/oidctest"
	"github.com/riskgate/riskgate/policy"
)

// Two valid policy files and two broken ones. For a device at medium,
// strict (max_risk low) blocks and relaxed (max_risk medium) allows, so
// every response tells which of the two was in force; a broken file must
// never be in force.
type reloadFiles struct {
	strict, relaxed, syntax, unknownKey string
}

func newReloadFiles(p configParams) reloadFiles {
	p.Policies = policyYAML("strict", "low")
	strict := renderConfig(p)
	p.Policies = policyYAML("relaxed", "medium")
	relaxed := renderConfig(p)
	return reloadFiles{
		strict:  strict,
		relaxed: relaxed,
		// A file cut off mid-edit.
		syntax: relaxed + "  - name: half-written\n    routes: [app\n",
		// A typo in a key: rejected whole, nothing of it applied.
		unknownKey: strings.Replace(relaxed, "max_risk: medium", "max_risk: medium\n    max_risks: low", 1),
	}
}

// loadClients send requests for a medium-risk device concurrently until
// stopped, and check that every response is the decision of strict or of
// relaxed.
type loadClients struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	allowed  atomic.Int64
	blocked  atomic.Int64
	mu       sync.Mutex
	failures []string
}

func startLoadClients(t *testing.T, n int, client *http.Client, url, bearer string) *loadClients {
	lc := &loadClients{stop: make(chan struct{})}
	for range n {
		lc.wg.Go(func() {
			for {
				select {
				case <-lc.stop:
					return
				default:
				}
				r, err := do(client, url, bearer)
				switch {
				case err != nil:
					lc.fail("request failed: %v", err)
				case r.Status == http.StatusOK && r.Seen.Decision == "allow" && r.Seen.Risk == "medium":
					lc.allowed.Add(1)
				case r.Status == http.StatusForbidden && r.Block["reason"] == "risk_too_high" && r.Block["policy"] == "strict":
					lc.blocked.Add(1)
				default:
					lc.fail("neither strict's nor relaxed's decision: %d %s", r.Status, r.Body)
				}
			}
		})
	}
	t.Cleanup(lc.halt)
	return lc
}

func (lc *loadClients) fail(format string, args ...any) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if len(lc.failures) < 20 {
		lc.failures = append(lc.failures, fmt.Sprintf(format, args...))
	}
}

func (lc *loadClients) halt() {
	select {
	case <-lc.stop:
	default:
		close(lc.stop)
	}
	lc.wg.Wait()
}

// reloads returns the success and error counts of
// riskgate_config_reloads_total and riskgate_config_last_reload_successful.
func (s *server) reloads(t testing.TB) (ok, failed, last float64) {
	m := s.metrics(t)
	return metricOr0(m, "riskgate_config_reloads_total", "result=success"),
		metricOr0(m, "riskgate_config_reloads_total", "result=error"),
		metricOr0(m, "riskgate_config_last_reload_successful")
}

// reloadScenario starts riskgate on strict with concurrent clients, then
// writes n files to the config path cycling relaxed, syntax error, strict,
// unknown key, triggering each reload with trigger and waiting for it to be
// counted.
func reloadScenario(t *testing.T, n int, trigger func(), mods ...serveMod) {
	iss := oidctest.New(t)
	v := newVendor(t)
	v.set("dev-med", policy.LevelMedium, testUser, "android", "14")
	up := newUpstream(t)
	files := newReloadFiles(configParams{
		Issuer: iss.URL, Upstream: up.URL, Vendors: vendorYAML("acme", v.url(), time.Hour, false),
	})
	path := filepath.Join(t.TempDir(), "riskgate.yaml")
	writeFile(t, path, files.strict)
	s := startServe(t, path, mods...)
	s.waitReady(t)
	tok := token(t, iss, testUser, nil, "dev-med")
	r := mustDo(t, s.client, s.proxyURL+"/mail", tok)
	require.Equal(t, http.StatusForbidden, r.Status, r.Body)

	okBase, failBase, _ := s.reloads(t)
	require.Equal(t, 1.0, okBase, "the initial load counts as a successful load")
	require.Equal(t, 0.0, failBase)

	lc := startLoadClients(t, 3, &http.Client{Transport: &http.Transport{}, Timeout: 15 * time.Second},
		s.proxyURL+"/mail", tok)

	wantOK, wantFail := okBase, failBase
	for i := range n {
		var content string
		valid, allow := true, false
		switch i % 4 {
		case 0:
			content, allow = files.relaxed, true
		case 1:
			content, valid = files.syntax, false
		case 2:
			content = files.strict
		case 3:
			content, valid = files.unknownKey, false
		}
		if (i+i/4)%2 == 0 {
			replaceFile(t, path, content)
		} else {
			writeFile(t, path, content)
		}
		if valid {
			wantOK++
		} else {
			wantFail++
		}
		if trigger != nil {
			trigger()
		}
		wantLast := 0.0
		if valid {
			wantLast = 1
		}
		// The counter and the gauge are two metrics: a scrape may see one
		// updated and not yet the other, so wait for both.
		var ok, failed, last float64
		require.Eventually(t, func() bool {
			ok, failed, last = s.reloads(t)
			return ok+failed >= wantOK+wantFail && last == wantLast
		}, waitTimeout, pollInterval, "reload %d was not counted, or riskgate_config_last_reload_successful is not %v", i, wantLast)
		require.Equal(t, []float64{wantOK, wantFail}, []float64{ok, failed}, "reload %d: success and error counts", i)
		// The request right after a reload is decided on the config in
		// force: the new one, or the previous one after a broken file.
		r := mustDo(t, s.client, s.proxyURL+"/mail", tok)
		wantStatus := http.StatusForbidden
		if (valid && allow) || (!valid && i%4 == 1) { // 1 follows relaxed, 3 follows strict
			wantStatus = http.StatusOK
		}
		require.Equal(t, wantStatus, r.Status, "request after reload %d: %s", i, r.Body)
	}
	lc.halt()
	lc.mu.Lock()
	assert.Empty(t, lc.failures, "every request succeeded with strict's or relaxed's decision")
	lc.mu.Unlock()
	assert.Positive(t, lc.allowed.Load(), "requests decided by relaxed")
	assert.Positive(t, lc.blocked.Load(), "requests decided by strict")
	t.Logf("%d reloads, %d requests allowed, %d blocked", n, lc.allowed.Load(), lc.blocked.Load())

	ok, failed, last := s.reloads(t)
	assert.Equal(t, wantOK, ok)
	assert.Equal(t, wantFail, failed)
	assert.Equal(t, float64(n/2), failed-failBase, "every broken file was counted as a failure")
	if (n-1)%4 == 1 || (n-1)%4 == 3 {
		assert.Equal(t, 0.0, last, "the last reload was of a broken file")
	}
	assert.Zero(t, metricOr0(s.metrics(t), "riskgate_upstream_errors_total", "route=app"))
	logs := s.logs.String()
	assert.Contains(t, logs, "config reload failed; the previous config keeps serving")
	assert.Contains(t, logs, `max_risks`, "the failure is logged with the file's error")
	require.NoError(t, s.stop())
}

// TestReloadWatcher reloads 100 times through the file watcher, under load.
func TestReloadWatcher(t *testing.T) {
	t.Parallel()
	reloadScenario(t, 100, nil)
}

// TestReloadSIGHUP reloads on SIGHUP (file watching off), under load. It is
// not parallel: SIGHUP reaches every reloader in the process, and no
// riskgate of another test may be running.
func TestReloadSIGHUP(t *testing.T) {
	// The test binary ignores SIGHUP while this test runs, whatever the
	// timing: only the reloader's own signal.Notify makes it reload.
	guard := make(chan os.Signal, 64)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	reloadScenario(t, 24, func() {
		require.Eventually(t, func() bool { return goroutineIn("cmd/riskgate.(*reloader).Run(", "select") },
			waitTimeout, pollInterval, "reloader not listening for SIGHUP")
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	}, withoutWatch)
}

// TestReloadVendors: a reload that changes the vendor list starts the new
// vendor's syncer and stops the removed one's.
func TestReloadVendors(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	v1, v2 := newVendor(t), newVendor(t)
	v1.set("dev-1", policy.LevelSecured, testUser, "ios", "17.4")
	v2.set("dev-2", policy.LevelSecured, testUser, "ios", "17.4")
	up := newUpstream(t)
	p := configParams{Issuer: iss.URL, Upstream: up.URL, Policies: policyYAML("p", "low"),
		Vendors: vendorYAML("one", v1.url(), 50*time.Millisecond, true)}
	path := filepath.Join(t.TempDir(), "riskgate.yaml")
	writeFile(t, path, renderConfig(p))
	s := startServe(t, path)
	s.waitReady(t)
	tok1 := token(t, iss, testUser, nil, "dev-1")
	tok2 := token(t, iss, testUser, nil, "dev-2")
	assert.Equal(t, http.StatusOK, mustDo(t, s.client, s.proxyURL+"/", tok1).Status)
	r := mustDo(t, s.client, s.proxyURL+"/", tok2)
	assert.Equal(t, "device_unknown", r.Block["reason"])
	require.Eventually(t, func() bool { return v1.requests.Load() >= 3 }, waitTimeout, pollInterval, "vendor one is polled on its interval")
	require.Zero(t, v2.requests.Load())

	p.Vendors = vendorYAML("two", v2.url(), 50*time.Millisecond, true)
	replaceFile(t, path, renderConfig(p))
	require.Eventually(t, func() bool { return v2.requests.Load() >= 2 }, waitTimeout, pollInterval, "the new vendor's syncer runs")
	stoppedAt := v1.requests.Load()
	n2 := v2.requests.Load()
	require.Eventually(t, func() bool { return v2.requests.Load() >= n2+5 }, waitTimeout, pollInterval)
	assert.Equal(t, stoppedAt, v1.requests.Load(), "the removed vendor is no longer polled")

	s.waitReady(t)
	r = mustDo(t, s.client, s.proxyURL+"/", tok2)
	assert.Equal(t, http.StatusOK, r.Status, r.Body)
	r = mustDo(t, s.client, s.proxyURL+"/", tok1)
	assert.Equal(t, "device_unknown", r.Block["reason"], "the removed vendor's devices are gone")
	code, _ := pushWebhook(t, s.client, s.proxyURL, "one", webhookSecret, webhookDevice("dev-1", "secured"))
	assert.Equal(t, http.StatusNotFound, code, "the removed vendor's webhook is gone")
	code, body := pushWebhook(t, s.client, s.proxyURL, "two", webhookSecret, webhookDevice("dev-1", "secured"))
	assert.Equal(t, http.StatusOK, code, body)

	m := s.metrics(t)
	assert.Positive(t, metricOr0(m, "riskgate_risk_sync_total", "vendor=two", "result=success"))
	require.NoError(t, s.stop())
}
