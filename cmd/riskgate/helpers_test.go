package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/oidctest"
	"github.com/riskgate/riskgate/internal/vendorsim"
	"github.com/riskgate/riskgate/policy"
)

// The tests below run riskgate as its users do: a config file on disk, real
// listeners on 127.0.0.1:0, a real OIDC issuer, a simulated MTD vendor and
// an httptest upstream.

const (
	testAudience   = "riskgate"
	testUser       = "alice@corp.example"
	vendorToken    = "vendor-token-1"
	webhookSecret  = "webhook-secret-0123456789"
	sessionSecret  = "session-secret-0123456789abcdef"
	waitTimeout    = 20 * time.Second
	pollInterval   = 10 * time.Millisecond
	serveStartWait = 40 * time.Second
)

// lockedBuffer collects a server's JSON log lines, safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// vendor is a generic-API vendor simulator behind a real HTTP server, with
// a switch to make it fail (500) and a gate to hold its requests.
type vendor struct {
	store *vendorsim.Store
	sim   *vendorsim.Generic
	srv   *httptest.Server
	down  atomic.Bool
	// gate, while not nil, holds every request until it is closed.
	gateMu   sync.Mutex
	gate     chan struct{}
	requests atomic.Int64 // every request, failed ones included
}

func newVendor(t *testing.T) *vendor {
	t.Helper()
	v := &vendor{store: vendorsim.NewStore(nil)}
	v.sim = vendorsim.NewGeneric(v.store, vendorToken)
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.requests.Add(1)
		v.gateMu.Lock()
		g := v.gate
		v.gateMu.Unlock()
		if g != nil {
			select {
			case <-g:
			case <-r.Context().Done():
				return
			}
		}
		if v.down.Load() {
			http.Error(w, `{"error":"down"}`, http.StatusInternalServerError)
			return
		}
		v.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(v.srv.Close)
	return v
}

// hold makes requests wait until the returned func is called.
func (v *vendor) hold() (release func()) {
	g := make(chan struct{})
	v.gateMu.Lock()
	v.gate = g
	v.gateMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			v.gateMu.Lock()
			v.gate = nil
			v.gateMu.Unlock()
			close(g)
		})
	}
}

func (v *vendor) url() string { return v.srv.URL + "/v1/devices" }

func (v *vendor) set(id string, l policy.Level, user, platform, osv string) {
	v.store.Set(vendorsim.Device{ID: id, Level: l, User: user, Platform: platform, OSVersion: osv})
}

// upstreamSeen is what the echo upstream reports about a request.
type upstreamSeen struct {
	Path     string `json:"path"`
	User     string `json:"user"`
	Email    string `json:"email"`
	Groups   string `json:"groups"`
	Device   string `json:"device"`
	Risk     string `json:"risk"`
	Decision string `json:"decision"`
	Auth     string `json:"auth"`
}

// newUpstream is an upstream app that echoes riskgate's identity headers.
func newUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(upstreamSeen{
			Path:     r.URL.Path,
			User:     r.Header.Get("X-Forwarded-User"),
			Email:    r.Header.Get("X-Forwarded-Email"),
			Groups:   r.Header.Get("X-Forwarded-Groups"),
			Device:   r.Header.Get("X-Riskgate-Device-Id"),
			Risk:     r.Header.Get("X-Riskgate-Risk"),
			Decision: r.Header.Get("X-Riskgate-Decision"),
			Auth:     r.Header.Get("Authorization"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// configParams fill configTemplate.
type configParams struct {
	Issuer   string
	Upstream string
	// Vendors is the YAML list under risk.vendors (indented 4 spaces).
	Vendors string
	// Policies is the YAML list under policies: (indented 2 spaces).
	Policies string
	// Sources is the YAML list under devices.sources (indented 4 spaces);
	// default: the deviceid claim, then the DeviceId query parameter.
	Sources string
	// Risk holds extra keys of the risk section (indented 2 spaces).
	Risk string
	// Server holds extra keys of the server section (indented 2 spaces).
	Server string
}

func vendorYAML(name, url string, interval time.Duration, webhook bool) string {
	s := fmt.Sprintf("    - name: %s\n      type: generic\n      url: %s\n      token: %s\n      interval: %s\n      timeout: 10s\n",
		name, url, vendorToken, interval)
	if webhook {
		s += "      webhook_secret: " + webhookSecret + "\n"
	}
	return s
}

func policyYAML(name, maxRisk string) string {
	return fmt.Sprintf("  - name: %s\n    mode: enforce\n    routes: [app]\n    max_risk: %s\n", name, maxRisk)
}

func renderConfig(p configParams) string {
	if p.Sources == "" {
		p.Sources = "    - claim: deviceid\n    - query: DeviceId\n"
	}
	return `server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  shutdown_timeout: 10s
  upstream_timeout: 10s
` + p.Server + `auth:
  issuer: ` + p.Issuer + `
  client_id: riskgate
  client_secret: client-secret
  redirect_url: http://127.0.0.1/.riskgate/callback
  audiences: [` + testAudience + `]
  session:
    secret: ` + sessionSecret + `
devices:
  sources:
` + p.Sources + `risk:
  max_age: 1h
` + p.Risk + `  vendors:
` + p.Vendors + `routes:
  - name: app
    path_prefix: /
    upstream: ` + p.Upstream + `
policies:
` + p.Policies
}

// writeFile writes data to path in place.
func writeFile(t testing.TB, path, data string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
}

// replaceFile writes data to a temporary file next to path and renames it
// over path, as editors and Kubernetes do.
func replaceFile(t testing.TB, path, data string) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), ".edit-*")
	require.NoError(t, err)
	_, err = f.WriteString(data)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Rename(f.Name(), path))
}

// server is a riskgate running in-process with serveConfig.
type server struct {
	t        *testing.T
	proxyURL string // http(s)://127.0.0.1:PORT
	adminURL string
	cancel   context.CancelFunc
	done     chan error
	logs     *lockedBuffer
	client   *http.Client
	stopped  bool
	result   error
}

type serveMod func(*serveOptions)

func withoutWatch(o *serveOptions) { o.noWatch = true }

// startServe loads path and runs serveConfig until the test ends.
func startServe(t *testing.T, path string, mods ...serveMod) *server {
	t.Helper()
	getenv := func(string) string { return "" }
	cfg, set, err := loadConfig(path, getenv)
	require.NoError(t, err)
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	type addrs struct{ proxy, admin net.Addr }
	ch := make(chan addrs, 1)
	o := serveOptions{
		path: path, getenv: getenv, cfg: cfg, set: set, logger: logger, now: time.Now,
		listening: func(p, a net.Addr) { ch <- addrs{p, a} },
	}
	for _, m := range mods {
		m(&o)
	}
	s := &server{t: t, cancel: cancel, done: make(chan error, 1), logs: logs,
		client: &http.Client{Transport: &http.Transport{}, Timeout: 15 * time.Second}}
	go func() { s.done <- serveConfig(ctx, o) }()
	t.Cleanup(func() {
		s.stop()
		s.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("riskgate logs:\n%s", tail(logs.String(), 60))
		}
	})
	select {
	case a := <-ch:
		scheme := "http"
		if cfg.Server.TLS.CertFile != "" {
			scheme = "https"
		}
		s.proxyURL = scheme + "://" + a.proxy.String()
		s.adminURL = "http://" + a.admin.String()
	case err := <-s.done:
		s.stopped, s.result = true, err
		t.Fatalf("serveConfig returned before listening: %v\nlogs:\n%s", err, logs.String())
	case <-time.After(serveStartWait):
		t.Fatalf("serveConfig did not start listening within %s", serveStartWait)
	}
	return s
}

// stop cancels the server's context and waits for serveConfig to return.
func (s *server) stop() error {
	if s.stopped {
		return s.result
	}
	s.stopped = true
	s.cancel()
	select {
	case s.result = <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Errorf("serveConfig did not return within 30s of cancel")
	}
	return s.result
}

// tail returns the last n log lines, without the per-request decision
// lines.
func tail(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if !strings.Contains(l, `"msg":"decision"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// get does a GET on the admin listener and returns status and body.
func (s *server) adminGet(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := s.client.Get(s.adminURL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func (s *server) waitReady(t testing.TB) {
	t.Helper()
	require.Eventually(t, func() bool {
		code, _ := s.adminGet(t, "/readyz")
		return code == http.StatusOK
	}, waitTimeout, pollInterval, "/readyz never became 200")
}

// metrics scrapes /metrics.
func (s *server) metrics(t testing.TB) string {
	t.Helper()
	code, body := s.adminGet(t, "/metrics")
	require.Equal(t, http.StatusOK, code)
	return body
}

// metricValue finds the sample of name whose labels include every one of
// labels ("k=v" pairs) in a Prometheus text exposition. ok is false when
// there is none.
func metricValue(body, name string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		var lbls string
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			lbls, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // a longer name with the same prefix
		}
		have := map[string]string{}
		for _, kv := range strings.Split(lbls, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				have[k] = strings.Trim(v, `"`)
			}
		}
		match := true
		for _, want := range labels {
			k, v, _ := strings.Cut(want, "=")
			if have[k] != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		return f, true
	}
	return 0, false
}

// metricOr0 is metricValue with 0 for an absent sample.
func metricOr0(body, name string, labels ...string) float64 {
	v, _ := metricValue(body, name, labels...)
	return v
}

// token signs a bearer token for user with groups and an optional device
// claim.
func token(t testing.TB, iss *oidctest.Issuer, user string, groups []string, device string) string {
	t.Helper()
	c := iss.Claims(user, testAudience)
	if groups != nil {
		c["groups"] = groups
	}
	if device != "" {
		c["deviceid"] = device
	}
	return iss.Sign(t, c)
}

// response is a proxy response, decoded.
type response struct {
	Status int
	Seen   upstreamSeen      // when forwarded (200)
	Block  map[string]string // when blocked or refused (JSON body)
	Body   string
}

// do sends a request through the proxy with a bearer token, asking for JSON.
func do(client *http.Client, url, bearer string) (response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return response{}, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{Status: resp.StatusCode, Body: string(b)}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &r.Seen); err != nil {
			return r, fmt.Errorf("upstream body %q: %w", b, err)
		}
	} else if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &r.Block); err != nil {
			return r, fmt.Errorf("error body %q: %w", b, err)
		}
	}
	return r, nil
}

// mustDo is do that fails the test on a transport error.
func mustDo(t testing.TB, client *http.Client, url, bearer string) response {
	t.Helper()
	r, err := do(client, url, bearer)
	require.NoError(t, err)
	return r
}

// goroutineIn reports whether a goroutine's stack has fn in it and is
// parked in state (e.g. "select"), or in any state when state is empty.
func goroutineIn(fn, state string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(g, fn) && (state == "" || strings.Contains(header, "["+state)) {
			return true
		}
	}
	return false
}
