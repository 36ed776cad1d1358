package main

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/riskgate/riskgate/policy"
)

// vendorStatus is one vendor's part of GET /status.
type vendorStatus struct {
	Name string `json:"name"`
	// LastSync is the last successful sync (or the restored state's);
	// empty when there was none.
	LastSync   *time.Time     `json:"last_sync,omitempty"`
	AgeSeconds *float64       `json:"age_seconds,omitempty"`
	Fresh      bool           `json:"fresh"`
	Devices    map[string]int `json:"devices"`
}

// status is GET /status on the admin listener.
type status struct {
	Ready   bool           `json:"ready"`
	Reason  string         `json:"reason,omitempty"`
	MaxAge  string         `json:"max_age"`
	Vendors []vendorStatus `json:"vendors"`
}

// statusHandler reports, per vendor, when its data was last refreshed,
// whether it is fresh (younger than risk.max_age) and its devices by level:
// what /readyz summarises in one status code.
func statusHandler(g *gateway) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := status{Ready: true, Vendors: []vendorStatus{}}
		if err := g.ready(); err != nil {
			st.Ready, st.Reason = false, err.Error()
		}
		if cfg := g.cfg.Load(); cfg != nil {
			st.MaxAge = cfg.Risk.MaxAge.String()
		}
		now := g.now()
		for _, name := range g.cache.Vendors() {
			vs := vendorStatus{Name: name, Fresh: g.cache.Fresh(name), Devices: map[string]int{}}
			if t, ok := g.cache.LastSync(name); ok {
				age := now.Sub(t).Seconds()
				vs.LastSync, vs.AgeSeconds = &t, &age
			}
			counts := g.cache.Counts(name)
			for _, l := range policy.Levels() {
				vs.Devices[l.String()] = counts[l]
			}
			st.Vendors = append(st.Vendors, vs)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
}
