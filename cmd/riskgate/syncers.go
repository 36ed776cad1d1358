package main

import (
	"context"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

// syncers runs one riskcache.Syncer per configured vendor and starts and
// stops them when a reload changes the vendor list.
type syncers struct {
	logger  *slog.Logger
	cache   *riskcache.Cache
	metrics *riskcache.Metrics
	client  *http.Client
	now     func() time.Time
	updates chan []policy.Vendor
}

func newSyncers(logger *slog.Logger, cache *riskcache.Cache, m *riskcache.Metrics, client *http.Client, now func() time.Time) *syncers {
	return &syncers{logger: logger, cache: cache, metrics: m, client: client, now: now,
		updates: make(chan []policy.Vendor, 1)}
}

// Update asks Run to reconcile the running syncers with vendors. The newest
// update wins; Update never blocks.
func (s *syncers) Update(vendors []policy.Vendor) {
	for {
		select {
		case s.updates <- vendors:
			return
		default:
		}
		select {
		case <-s.updates: // drop the stale pending update
		default:
		}
	}
}

type runningSyncer struct {
	cfg    policy.Vendor
	cancel context.CancelFunc
	done   chan struct{}
}

// Run owns the syncer goroutines until ctx ends; then it stops them all and
// waits for them.
func (s *syncers) Run(ctx context.Context) error {
	running := map[string]*runningSyncer{}
	stop := func(r *runningSyncer) {
		r.cancel()
		<-r.done
	}
	defer func() {
		for _, r := range running {
			r.cancel()
		}
		for _, r := range running {
			<-r.done
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case vendors := <-s.updates:
			want := map[string]policy.Vendor{}
			for _, v := range vendors {
				want[v.Name] = v
			}
			for name, r := range running {
				if v, ok := want[name]; !ok || !sameVendor(v, r.cfg) {
					stop(r)
					delete(running, name)
					s.logger.Info("vendor syncer stopped", "vendor", name)
				}
			}
			for name, v := range want {
				if _, ok := running[name]; ok {
					continue
				}
				src, err := riskcache.NewSource(v, s.client)
				if err != nil {
					// Validation rejects such a config; log in case it slips by.
					s.logger.Error("vendor not started", "vendor", name, "err", err)
					continue
				}
				sy := riskcache.NewSyncer(riskcache.SyncerOptions{
					Vendor:   name,
					Source:   src,
					Cache:    s.cache,
					Interval: v.Interval.Duration,
					Logger:   s.logger,
					Metrics:  s.metrics,
					Now:      s.now,
				})
				rctx, cancel := context.WithCancel(ctx)
				r := &runningSyncer{cfg: v, cancel: cancel, done: make(chan struct{})}
				running[name] = r
				go func() {
					defer close(r.done)
					if err := sy.Run(rctx); err != nil {
						s.logger.Error("vendor syncer ended", "vendor", name, "err", err)
					}
				}()
				s.logger.Info("vendor syncer started", "vendor", name, "type", v.Type)
			}
		}
	}
}

// sameVendor reports whether two vendor configs would run the same syncer
// (positions in the file do not matter).
func sameVendor(a, b policy.Vendor) bool {
	a.Line, a.Column, b.Line, b.Column = 0, 0, 0, 0
	return reflect.DeepEqual(a, b)
}
