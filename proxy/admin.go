package proxy

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminOptions configure the admin listener's handler.
type AdminOptions struct {
	// Gatherer is scraped by /metrics. Required.
	Gatherer prometheus.Gatherer
	// Ready reports readiness for /readyz: nil means ready, an error's text
	// is the reason given with the 503. Nil Ready: always ready.
	Ready func() error
	// Handlers are extra endpoints mounted on the admin mux by pattern
	// (for example "GET /explain"). They must not collide with the built-in
	// ones.
	Handlers map[string]http.Handler
}

// NewAdmin returns the admin listener's handler: /metrics, /healthz (the
// process is alive) and /readyz (the process should receive traffic).
func NewAdmin(opts AdminOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if opts.Ready != nil {
			if err := opts.Ready(); err != nil {
				writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
				return
			}
		}
		writeText(w, http.StatusOK, "ready\n")
	})
	for pattern, h := range opts.Handlers {
		mux.Handle(pattern, h)
	}
	return mux
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
