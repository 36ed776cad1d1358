package demoapp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/demoapp"
)

func get(t *testing.T, url, accept string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", accept)
	req.Header.Set("X-Forwarded-User", "alice@corp.example")
	req.Header.Set("X-Forwarded-Groups", "staff,admins")
	req.Header.Set("X-Riskgate-Risk", "low")
	req.Header.Set("X-Riskgate-Device-Id", "<d-1>")
	req.Header.Set("X-Request-Id", "req-42")
	req.Header.Set("X-Other", "not shown")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func TestApp(t *testing.T) {
	ts := httptest.NewServer(demoapp.New("Mail"))
	t.Cleanup(ts.Close)

	t.Run("html", func(t *testing.T) {
		resp, body := get(t, ts.URL+"/inbox?folder=1", "text/html,application/json;q=0.9")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		for _, want := range []string{"<h1>Mail</h1>", "signed in as <strong>alice@corp.example</strong>",
			"X-Riskgate-Risk", "low", "X-Forwarded-Groups", "staff,admins", "req-42", "&lt;d-1&gt;", `name="viewport"`, "/inbox?folder=1"} {
			assert.Contains(t, body, want)
		}
		assert.NotContains(t, body, "X-Other")
		assert.NotContains(t, body, "<d-1>")
	})

	t.Run("json", func(t *testing.T) {
		resp, body := get(t, ts.URL+"/api/messages", "application/json")
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var v demoapp.View
		require.NoError(t, json.Unmarshal([]byte(body), &v))
		assert.Equal(t, demoapp.View{
			App: "Mail", User: "alice@corp.example", Method: "GET", Path: "/api/messages",
			Headers: []demoapp.Header{
				{Name: "X-Forwarded-Groups", Value: "staff,admins"},
				{Name: "X-Forwarded-User", Value: "alice@corp.example"},
				{Name: "X-Request-Id", Value: "req-42"},
				{Name: "X-Riskgate-Device-Id", Value: "<d-1>"},
				{Name: "X-Riskgate-Risk", Value: "low"},
			},
		}, v)
	})

	t.Run("direct request shows nobody", func(t *testing.T) {
		resp, err := http.Get(ts.URL + "/")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Contains(t, string(body), "nobody")
		assert.Contains(t, string(body), "did not come through riskgate")
	})
}
