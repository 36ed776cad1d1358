package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBodyIdleTimeout: a request body that stops sending for
// server.body_idle_timeout fails, one that keeps sending slowly for longer
// than that goes through, and so does a response that takes longer than
// that after the body is done. The sleeps here make the client slow; they
// do not wait for anything.
func TestBodyIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	type result struct {
		n   int64
		err error
	}
	got := make(chan result, 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		got <- result{n, err}
		if d, _ := time.ParseDuration(r.URL.Query().Get("delay")); d > 0 {
			time.Sleep(d)
		}
		_, _ = io.WriteString(w, strconv.FormatInt(n, 10))
	}))
	t.Cleanup(up.Close)
	config := strings.NewReplacer("upstream_timeout: 2s", "upstream_timeout: 5s\n  body_idle_timeout: 300ms",
		"{{UPSTREAM}}", up.URL).Replace(testConfig)
	h := newHarness(t, config)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})

	post := func(t *testing.T, query string, chunks int, gap time.Duration) (*http.Response, error) {
		pr, pw := io.Pipe()
		go func() {
			for i := range chunks {
				if i > 0 {
					time.Sleep(gap)
				}
				if _, err := pw.Write([]byte("0123456789")); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, err := http.NewRequest(http.MethodPost, h.server.URL+"/upload"+query, pr)
		require.NoError(t, err)
		req.Host = "mail.test"
		req.Header.Set("Authorization", "Bearer "+tok)
		return (&http.Client{Timeout: 10 * time.Second}).Do(req)
	}

	t.Run("slow but steady upload", func(t *testing.T) {
		resp, err := post(t, "", 8, idle/3) // ~0.7 s in all, never idle for 300 ms
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "80", string(body))
		assert.Equal(t, result{80, nil}, <-got)
	})
	t.Run("long response after the body", func(t *testing.T) {
		resp, err := post(t, "?delay=900ms", 1, 0)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "10", string(body))
		<-got
	})
	t.Run("stalled body", func(t *testing.T) {
		resp, err := post(t, "", 2, 3*idle)
		if err == nil {
			resp.Body.Close()
			assert.NotEqual(t, http.StatusOK, resp.StatusCode)
		}
		select {
		case r := <-got:
			assert.Error(t, r.err, "the upstream never gets the whole body")
		case <-time.After(5 * time.Second):
			t.Fatal("the upstream request was not ended")
		}
	})
}
