package riskcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Syncer defaults, used when SyncerOptions leaves them zero.
const (
	DefaultInterval   = 30 * time.Second
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
)

// SyncerOptions configure a Syncer.
type SyncerOptions struct {
	// Vendor is the vendor's name in the cache, logs and metrics.
	Vendor string
	Source Source
	Cache  *Cache
	// Interval between the end of a successful sync and the next one.
	// Zero means DefaultInterval.
	Interval time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Metrics; nil records nothing.
	Metrics *Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MinBackoff and MaxBackoff bound the exponential backoff after a failed
	// sync. Zero means DefaultMinBackoff and DefaultMaxBackoff. A vendor's
	// Retry-After is honoured even beyond MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// After waits; nil means time.After. Tests inject it to observe the
	// waits asked for without sleeping.
	After func(time.Duration) <-chan time.Time
}

// Syncer keeps one vendor's data in the cache: a full sync at start, then
// deltas from the last cursor on every interval.
type Syncer struct {
	vendor                 string
	src                    Source
	cache                  *Cache
	interval               time.Duration
	log                    *slog.Logger
	metrics                *Metrics
	now                    func() time.Time
	minBackoff, maxBackoff time.Duration
	after                  func(time.Duration) <-chan time.Time

	// cursor asks for the changes since the last successful sync; empty
	// means the next sync is a full one. Only the Run/SyncOnce goroutine
	// touches it.
	cursor string
}

// NewSyncer returns a syncer; Run starts it.
func NewSyncer(opts SyncerOptions) *Syncer {
	s := &Syncer{
		vendor:     opts.Vendor,
		src:        opts.Source,
		cache:      opts.Cache,
		interval:   opts.Interval,
		log:        opts.Logger,
		metrics:    opts.Metrics,
		now:        opts.Now,
		minBackoff: opts.MinBackoff,
		maxBackoff: opts.MaxBackoff,
		after:      opts.After,
	}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("vendor", s.vendor)
	if s.now == nil {
		s.now = time.Now
	}
	if s.minBackoff <= 0 {
		s.minBackoff = DefaultMinBackoff
	}
	if s.maxBackoff <= 0 {
		s.maxBackoff = DefaultMaxBackoff
	}
	if s.maxBackoff < s.minBackoff {
		s.maxBackoff = s.minBackoff
	}
	if s.after == nil {
		s.after = time.After
	}
	s.metrics.AttachCache(s.cache)
	return s
}

// Run syncs until ctx is cancelled, then returns nil. Syncs never overlap.
// A failed sync is logged, counted and retried after an exponential backoff
// with jitter, or after the vendor's Retry-After if that is longer.
func (s *Syncer) Run(ctx context.Context) error {
	failures := 0
	for {
		err := s.SyncOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := s.interval
		if err != nil {
			failures++
			wait = s.backoff(failures, err)
			s.log.Warn("risk sync failed", "err", err, "failures", failures, "retry_in", wait)
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.after(wait):
		}
	}
}

// backoff is the wait after the n-th consecutive failure: MinBackoff·2^(n-1)
// capped at MaxBackoff, jittered down by up to half, and never less than a
// Retry-After the vendor sent with a 429 or 5xx.
func (s *Syncer) backoff(n int, err error) time.Duration {
	d := s.minBackoff
	for i := 1; i < n && d < s.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.maxBackoff)
	d = d/2 + rand.N(d/2+1)
	var he *HTTPError
	if errors.As(err, &he) && he.Retryable() && he.RetryAfter > d {
		d = he.RetryAfter
	}
	return d
}

// SyncOnce runs one sync: a full one (from an empty cursor) the first time
// and whenever the source has no delta, otherwise a delta from the last
// cursor. Pages are applied as they arrive; a failed page fails the sync,
// keeps what earlier pages applied and keeps the cursor, so the next sync
// starts over from it. Only a complete full sync removes the devices the
// vendor no longer lists, and only a complete sync marks the vendor synced.
func (s *Syncer) SyncOnce(ctx context.Context) error {
	start := s.now()
	err := s.sync(ctx)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	s.metrics.syncDone(s.vendor, start, s.now(), err)
	if err != nil {
		return fmt.Errorf("riskcache: sync %s: %w", s.vendor, err)
	}
	s.cache.MarkSynced(s.vendor, start)
	return nil
}

// maxPages bounds one sync, against a vendor that keeps saying has_more.
const maxPages = 1_000_000

// fetched is a page fetched ahead.
type fetched struct {
	page Page
	err  error
}

// sync fetches page n+1 while it applies page n, so that a sync keeps two
// cores busy: one fetching and decoding, the other writing into the cache.
// At most one fetch is ahead, and it has always ended when sync returns.
func (s *Syncer) sync(ctx context.Context) error {
	full := s.cursor == ""
	var gen Generation
	if full {
		gen = s.cache.BeginSync(s.vendor)
	}
	cursor := s.cursor
	applied, removed := 0, 0
	p, err := s.src.Fetch(ctx, cursor)
	for page := 0; ; page++ {
		if err != nil {
			return fmt.Errorf("page %d: %w", page+1, err)
		}
		if p.HasMore && (p.NextCursor == "" || p.NextCursor == cursor) {
			return fmt.Errorf("page %d: has_more without a new cursor", page+1)
		}
		var next chan fetched
		if p.HasMore && page+1 < maxPages {
			next = make(chan fetched, 1)
			go func(cursor string) {
				p, err := s.src.Fetch(ctx, cursor)
				next <- fetched{p, err}
			}(p.NextCursor)
		}
		applied += s.cache.Apply(s.vendor, p.Reports)
		if p.HasMore {
			if next == nil {
				return fmt.Errorf("more than %d pages", maxPages)
			}
			cursor = p.NextCursor
			f := <-next
			p, err = f.page, f.err
			continue
		}
		if full {
			removed = s.cache.Sweep(s.vendor, gen)
		}
		s.cursor = p.NextCursor
		s.log.Debug("risk sync done", "full", full, "pages", page+1, "applied", applied, "removed", removed)
		return nil
	}
}
