package riskcache

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
)

// waiter replaces time.After: each wait asked for is sent on asked, and
// the test releases it with release.
type waiter struct {
	asked   chan time.Duration
	release chan time.Time
}

func newWaiter() *waiter {
	return &waiter{asked: make(chan time.Duration), release: make(chan time.Time)}
}

func (w *waiter) after(d time.Duration) <-chan time.Time {
	w.asked <- d
	return w.release
}

// next returns the next wait the syncer asks for, failing after a deadline.
func (w *waiter) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-w.asked:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("syncer asked for no wait")
		return 0
	}
}

type syncFixture struct {
	v      *vendorServer
	cache  *Cache
	clock  *fakeClock
	syncer *Syncer
	wait   *waiter
}

func newSyncFixture(t *testing.T) *syncFixture {
	f := &syncFixture{v: newVendorServer(t), clock: newClock(), wait: newWaiter()}
	f.cache = New(Options{MaxAge: time.Hour, Now: f.clock.Now, Vendors: []string{"acme"}})
	f.syncer = NewSyncer(SyncerOptions{
		Vendor: "acme", Source: f.v.generic(), Cache: f.cache, Interval: 30 * time.Second,
		Logger: slog.New(slog.DiscardHandler), Now: f.clock.Now,
		MinBackoff: time.Second, MaxBackoff: time.Minute, After: f.wait.after,
	})
	return f
}

func TestSyncPagingThenDelta(t *testing.T) {
	f := newSyncFixture(t)
	f.v.on("", page("p2", true, "d1:high", "d2:low"))
	f.v.on("p2", page("delta-1", false, "d3:secured"))
	f.v.on("delta-1", page("delta-2", false, "d1:secured", "d2:deleted"))
	f.v.on("delta-2", page("delta-2", false))

	require.NoError(t, f.syncer.SyncOnce(t.Context()))
	assert.Equal(t, []string{"", "p2"}, f.v.requested())
	assert.Equal(t, policy.LevelHigh, f.cache.Lookup("d1").Level)
	assert.True(t, f.cache.Ready())
	last, ok := f.cache.LastSync("acme")
	require.True(t, ok)
	assert.True(t, f.clock.Now().Equal(last))

	require.NoError(t, f.syncer.SyncOnce(t.Context()))
	assert.Equal(t, []string{"", "p2", "delta-1"}, f.v.requested(), "the second sync is a delta from the last cursor")
	assert.Equal(t, policy.LevelSecured, f.cache.Lookup("d1").Level)
	assert.False(t, f.cache.Lookup("d2").Known)
	assert.True(t, f.cache.Lookup("d3").Known, "a delta does not remove unlisted devices")

	require.NoError(t, f.syncer.SyncOnce(t.Context()))
	assert.Equal(t, "delta-2", f.v.requested()[3])
}

func TestSyncFullWithoutDeltaRemovesVanished(t *testing.T) {
	f := newSyncFixture(t)
	f.v.on("", page("", false, "d1:high", "d2:low"), page("", false, "d1:high"))
	require.NoError(t, f.syncer.SyncOnce(t.Context()))
	assert.True(t, f.cache.Lookup("d2").Known)
	require.NoError(t, f.syncer.SyncOnce(t.Context()))
	assert.Equal(t, []string{"", ""}, f.v.requested(), "an empty next_cursor means a full sync every time")
	assert.False(t, f.cache.Lookup("d2").Known)
	assert.Equal(t, [5]int{policy.LevelHigh: 1}, f.cache.Counts("acme"))
}

func TestSyncFailedPageKeepsGoodData(t *testing.T) {
	f := newSyncFixture(t)
	f.v.on("", page("k1", false, "d1:low", "d2:low"))
	f.v.on("k1", reply{body: `{"devices":[{"device_id":"d1","risk":"hi`}, page("k2", false, "d1:medium"))
	require.NoError(t, f.syncer.SyncOnce(t.Context()))
	synced, _ := f.cache.LastSync("acme")

	f.clock.Add(time.Minute)
	err := f.syncer.SyncOnce(t.Context())
	require.ErrorContains(t, err, "riskcache: sync acme: page 1: riskcache: decode")
	assert.Equal(t, policy.LevelLow, f.cache.Lookup("d1").Level, "invalid JSON keeps the last good data")
	last, _ := f.cache.LastSync("acme")
	assert.Equal(t, synced, last, "a failed sync does not count as synced")

	require.NoError(t, f.syncer.SyncOnce(t.Context()))
	assert.Equal(t, []string{"", "k1", "k1"}, f.v.requested(), "the cursor stays at the last good one")
	assert.Equal(t, policy.LevelMedium, f.cache.Lookup("d1").Level)
}

func TestSyncFailedFullSyncRemovesNothing(t *testing.T) {
	f := newSyncFixture(t)
	f.v.on("", page("", false, "d1:low", "d2:low", "d3:high"), page("p2", true, "d1:high"))
	f.v.on("p2", reply{status: 503})
	require.NoError(t, f.syncer.SyncOnce(t.Context()))
	f.clock.Add(time.Minute)
	require.Error(t, f.syncer.SyncOnce(t.Context()))
	assert.Equal(t, policy.LevelHigh, f.cache.Lookup("d1").Level, "pages before the failure stay applied")
	assert.True(t, f.cache.Lookup("d2").Known, "a failed full sync removes nothing")
	assert.True(t, f.cache.Lookup("d3").Known)
}

func TestSyncStaleAfterMaxAge(t *testing.T) {
	f := newSyncFixture(t)
	f.v.on("", page("", false, "d1:secured"), reply{status: 500})
	require.NoError(t, f.syncer.SyncOnce(t.Context()))
	assert.False(t, f.cache.Lookup("d1").Stale)
	f.clock.Add(61 * time.Minute)
	require.Error(t, f.syncer.SyncOnce(t.Context()))
	r := f.cache.Lookup("d1")
	assert.True(t, r.Stale, "yesterday's secured is not left in force")
	assert.Equal(t, policy.LevelSecured, r.Level)
}

func TestRunBacksOffAndHonoursRetryAfter(t *testing.T) {
	f := newSyncFixture(t)
	f.v.on("",
		reply{status: 500, body: "down"},
		reply{status: 500, body: "down"},
		reply{status: 429, header: map[string]string{"Retry-After": "120"}},
		reply{status: 503, header: map[string]string{"Retry-After": "1"}},
		page("c", false, "d1:high"))
	f.v.on("c", page("c", false))

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.syncer.Run(ctx) }()

	first := f.wait.next(t)
	assert.GreaterOrEqual(t, first, 500*time.Millisecond)
	assert.LessOrEqual(t, first, time.Second)
	f.wait.release <- time.Time{}
	second := f.wait.next(t)
	assert.GreaterOrEqual(t, second, time.Second, "backoff grows")
	assert.LessOrEqual(t, second, 2*time.Second)
	f.wait.release <- time.Time{}
	assert.GreaterOrEqual(t, f.wait.next(t), 120*time.Second, "429 waits at least Retry-After")
	f.wait.release <- time.Time{}
	d := f.wait.next(t)
	assert.GreaterOrEqual(t, d, 4*time.Second, "a short Retry-After does not shorten the backoff")
	assert.LessOrEqual(t, d, 8*time.Second)
	f.wait.release <- time.Time{}
	assert.Equal(t, 30*time.Second, f.wait.next(t), "after success: the interval")
	assert.Equal(t, policy.LevelHigh, f.cache.Lookup("d1").Level)
	f.wait.release <- time.Time{}
	assert.Equal(t, 30*time.Second, f.wait.next(t))
	assert.Equal(t, []string{"", "", "", "", "", "c"}, f.v.requested())

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestBackoffCapped(t *testing.T) {
	s := NewSyncer(SyncerOptions{MinBackoff: time.Second, MaxBackoff: 10 * time.Second, Cache: New(Options{})})
	for n := 1; n < 100; n++ {
		d := s.backoff(n, assert.AnError)
		assert.LessOrEqual(t, d, 10*time.Second)
		assert.GreaterOrEqual(t, d, 500*time.Millisecond)
	}
	d := s.backoff(50, &HTTPError{Status: 429, RetryAfter: time.Hour})
	assert.Equal(t, time.Hour, d, "Retry-After beyond MaxBackoff is still honoured")
	d = s.backoff(1, &HTTPError{Status: 400, RetryAfter: time.Hour})
	assert.Less(t, d, time.Hour, "Retry-After only counts for 429 and 5xx")
}

func TestRunReturnsOnCancelDuringFetch(t *testing.T) {
	f := newSyncFixture(t)
	started := make(chan struct{})
	src := sourceFunc(func(ctx context.Context, _ string) (Page, error) {
		close(started)
		<-ctx.Done()
		return Page{}, ctx.Err()
	})
	s := NewSyncer(SyncerOptions{Vendor: "acme", Source: src, Cache: f.cache, After: f.wait.after,
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-started
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

type sourceFunc func(ctx context.Context, cursor string) (Page, error)

func (f sourceFunc) Fetch(ctx context.Context, cursor string) (Page, error) { return f(ctx, cursor) }
