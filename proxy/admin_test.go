package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdmin(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.ReloadSucceeded()
	var readyErr error
	srv := httptest.NewServer(NewAdmin(AdminOptions{
		Gatherer: reg,
		Ready:    func() error { return readyErr },
		Handlers: map[string]http.Handler{"GET /explain": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "explained")
		})},
	}))
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}

	code, body := get("/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)

	code, _ = get("/readyz")
	assert.Equal(t, http.StatusOK, code)
	readyErr = errors.New("vendor acme has not synced yet")
	code, body = get("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "vendor acme has not synced yet")

	code, body = get("/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "riskgate_config_reloads_total{result=\"success\"} 1")
	assert.Contains(t, body, "riskgate_config_last_reload_successful 1")

	code, body = get("/explain")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "explained", body)

	code, _ = get("/nothing")
	assert.Equal(t, http.StatusNotFound, code)
}
