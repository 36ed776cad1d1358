package riskcache

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
)

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func rep(id string, l policy.Level) Report {
	return Report{DeviceID: id, Level: l, User: "alice@corp.example", Platform: "ios", OSVersion: "17.4",
		UpdatedAt: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
}

func TestLookupWorstFreshVendorWins(t *testing.T) {
	clk := newClock()
	c := New(Options{MaxAge: time.Hour, Now: clk.Now, Vendors: []string{"a", "b"}})
	c.Apply("a", []Report{rep("d1", policy.LevelLow), rep("d2", policy.LevelHigh), rep("d3", policy.LevelMedium)})
	c.Apply("b", []Report{rep("d1", policy.LevelMedium), rep("d2", policy.LevelSecured)})
	c.MarkSynced("a", clk.Now())
	c.MarkSynced("b", clk.Now())

	tests := []struct {
		id     string
		known  bool
		level  policy.Level
		vendor string
	}{
		{"d1", true, policy.LevelMedium, "b"},
		{"d2", true, policy.LevelHigh, "a"},
		{"d3", true, policy.LevelMedium, "a"},
		{"nope", false, policy.LevelUnknown, ""},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			r := c.Lookup(tt.id)
			assert.Equal(t, tt.known, r.Known)
			assert.Equal(t, tt.level, r.Level)
			assert.Equal(t, tt.vendor, r.Vendor)
			assert.False(t, r.Stale)
		})
	}
	r := c.Lookup("d2")
	assert.Equal(t, "alice@corp.example", r.Owner)
	assert.Equal(t, "ios", r.Platform)
	assert.Equal(t, "17.4", r.OSVersion)
	assert.Equal(t, time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), r.UpdatedAt)
}

func TestLookupStaleness(t *testing.T) {
	clk := newClock()
	c := New(Options{MaxAge: time.Hour, Now: clk.Now, Vendors: []string{"a", "b"}})
	c.Apply("a", []Report{rep("d1", policy.LevelSecured)})
	c.Apply("b", []Report{rep("d1", policy.LevelHigh)})

	// Neither vendor has synced: both stale, the worst stale report wins.
	r := c.Lookup("d1")
	assert.True(t, r.Known)
	assert.True(t, r.Stale)
	assert.Equal(t, policy.LevelHigh, r.Level)
	assert.False(t, c.Ready())

	c.MarkSynced("a", clk.Now())
	assert.False(t, c.Ready())
	// a is fresh: its secured beats b's stale high.
	r = c.Lookup("d1")
	assert.False(t, r.Stale)
	assert.Equal(t, policy.LevelSecured, r.Level)
	assert.Equal(t, "a", r.Vendor)

	c.MarkSynced("b", clk.Now())
	assert.True(t, c.Ready())
	assert.Equal(t, policy.LevelHigh, c.Lookup("d1").Level)

	clk.Add(59 * time.Minute)
	c.MarkSynced("a", clk.Now())
	clk.Add(2 * time.Minute) // b is 61 minutes old, a 2 minutes
	r = c.Lookup("d1")
	assert.False(t, r.Stale)
	assert.Equal(t, policy.LevelSecured, r.Level, "a stale vendor's high does not count while a fresh one reports")
	assert.False(t, c.Fresh("b"))

	clk.Add(time.Hour)
	r = c.Lookup("d1")
	assert.True(t, r.Stale)
	assert.Equal(t, policy.LevelHigh, r.Level)
	assert.True(t, c.Ready(), "ready means synced once, not fresh")
}

func TestApplySinceAndDelete(t *testing.T) {
	clk := newClock()
	c := New(Options{Now: clk.Now, Vendors: []string{"a"}})
	c.MarkSynced("a", clk.Now())
	first := rep("d1", policy.LevelSecured)
	c.Apply("a", []Report{first})
	assert.Equal(t, first.UpdatedAt, c.Lookup("d1").Since, "a new device is at its level since the vendor's time")

	clk.Add(time.Minute)
	same := first
	same.UpdatedAt = first.UpdatedAt.Add(time.Hour)
	c.Apply("a", []Report{same})
	assert.Equal(t, first.UpdatedAt, c.Lookup("d1").Since, "same level keeps Since")
	assert.Equal(t, same.UpdatedAt, c.Lookup("d1").UpdatedAt)

	clk.Add(time.Minute)
	c.Apply("a", []Report{rep("d1", policy.LevelHigh)})
	assert.Equal(t, clk.Now(), c.Lookup("d1").Since, "a level change restarts Since")
	assert.Equal(t, [5]int{policy.LevelHigh: 1}, c.Counts("a"))

	n := c.Apply("a", []Report{{DeviceID: "d1", Deleted: true}, {DeviceID: ""}})
	assert.Equal(t, 1, n)
	assert.False(t, c.Lookup("d1").Known)
	assert.Equal(t, [5]int{}, c.Counts("a"))
	assert.Equal(t, 0, c.Apply("nobody", []Report{rep("d1", policy.LevelHigh)}))
}

func TestAltIDs(t *testing.T) {
	clk := newClock()
	c := New(Options{Now: clk.Now, Vendors: []string{"graph"}})
	c.MarkSynced("graph", clk.Now())
	r := rep("aad-1", policy.LevelMedium)
	r.AltIDs = []string{"eas-1"}
	c.Apply("graph", []Report{r})
	assert.Equal(t, policy.LevelMedium, c.Lookup("eas-1").Level)
	assert.Equal(t, policy.LevelMedium, c.Lookup("aad-1").Level)
	assert.Equal(t, 1, c.Len("graph"))
	assert.Equal(t, [5]int{policy.LevelMedium: 1}, c.Counts("graph"), "an alternative id is not another device")

	c.Apply("graph", []Report{{DeviceID: "aad-1", AltIDs: []string{"eas-1"}, Deleted: true}})
	assert.False(t, c.Lookup("eas-1").Known)
}

func TestCountsAndEviction(t *testing.T) {
	clk := newClock()
	c := New(Options{Size: 3, Now: clk.Now, Vendors: []string{"a"}})
	c.Apply("a", []Report{rep("1", policy.LevelLow), rep("2", policy.LevelLow), rep("3", policy.LevelHigh)})
	assert.Equal(t, [5]int{policy.LevelLow: 2, policy.LevelHigh: 1}, c.Counts("a"))
	c.Apply("a", []Report{rep("4", policy.LevelSecured)}) // evicts 1
	assert.Equal(t, [5]int{policy.LevelSecured: 1, policy.LevelLow: 1, policy.LevelHigh: 1}, c.Counts("a"))
	assert.False(t, c.Lookup("1").Known)
	c.Apply("a", []Report{rep("2", policy.LevelMedium)})
	assert.Equal(t, [5]int{policy.LevelSecured: 1, policy.LevelMedium: 1, policy.LevelHigh: 1}, c.Counts("a"))
}

func TestFullSyncRemovesVanishedDevices(t *testing.T) {
	clk := newClock()
	c := New(Options{Now: clk.Now, Vendors: []string{"a", "b"}})
	c.ReplaceAll("a", []Report{rep("1", policy.LevelLow), rep("2", policy.LevelHigh), rep("3", policy.LevelHigh)})
	c.Apply("b", []Report{rep("2", policy.LevelLow)})

	gen := c.BeginSync("a")
	c.Apply("a", []Report{rep("3", policy.LevelHigh)})
	c.Apply("a", []Report{rep("9", policy.LevelSecured)}) // e.g. a webhook during the sync
	assert.Equal(t, 0, c.Sweep("a", gen-1), "an outdated generation sweeps nothing")
	assert.Equal(t, 2, c.Sweep("a", gen))

	assert.False(t, c.Lookup("1").Known)
	assert.Equal(t, "b", c.Lookup("2").Vendor, "other vendors keep their devices")
	assert.True(t, c.Lookup("3").Known)
	assert.True(t, c.Lookup("9").Known)
	assert.Equal(t, [5]int{policy.LevelSecured: 1, policy.LevelHigh: 1}, c.Counts("a"))
}

func TestSetVendors(t *testing.T) {
	clk := newClock()
	c := New(Options{Now: clk.Now, Vendors: []string{"a", "b"}})
	c.Apply("a", []Report{rep("1", policy.LevelLow)})
	c.Apply("b", []Report{rep("1", policy.LevelHigh)})
	c.MarkSynced("a", clk.Now())

	c.SetVendors([]string{"a", "c"})
	assert.Equal(t, []string{"a", "c"}, c.Vendors())
	assert.Equal(t, policy.LevelLow, c.Lookup("1").Level, "b's data is gone")
	_, ok := c.LastSync("a")
	assert.True(t, ok, "a keeps its sync state")
	_, ok = c.LastSync("c")
	assert.False(t, ok)
	assert.False(t, c.Ready())
	assert.Equal(t, [5]int{}, c.Counts("b"))
}

func TestLookupDoesNotAllocate(t *testing.T) {
	clk := newClock()
	c := New(Options{Now: clk.Now, Vendors: []string{"a", "b"}})
	c.Apply("a", []Report{rep("1", policy.LevelLow)})
	c.MarkSynced("a", clk.Now())
	allocs := testing.AllocsPerRun(100, func() {
		_ = c.Lookup("1")
		_ = c.Lookup("2")
	})
	require.Zero(t, allocs)
}

func TestConcurrentApplyLookup(t *testing.T) {
	c := New(Options{Size: 100, Vendors: []string{"a"}})
	c.MarkSynced("a", time.Now())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				id := string(rune('a' + (i+w)%26))
				if w%2 == 0 {
					c.Apply("a", []Report{rep(id, policy.Level(i%5))})
				} else {
					_ = c.Lookup(id)
					_ = c.Counts("a")
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, n := range c.Counts("a") {
		total += n
	}
	assert.Equal(t, c.Len("a"), total)
}

func TestInternedStringsAreFreed(t *testing.T) {
	c := New(Options{Size: 2, Vendors: []string{"a"}})
	c.Apply("a", []Report{rep("1", policy.LevelLow), rep("2", policy.LevelLow)})
	s := c.store("a")
	assert.Len(t, s.strs.idx, 3, "owner, platform and OS version, each stored once")
	r := rep("2", policy.LevelLow)
	r.User = "bob@corp.example"
	c.Apply("a", []Report{r, rep("3", policy.LevelHigh)}) // updates 2, evicts 1
	assert.Len(t, s.strs.idx, 4)
	c.Apply("a", []Report{{DeviceID: "2", Deleted: true}, {DeviceID: "3", Deleted: true}})
	assert.Empty(t, s.strs.idx)
	assert.Equal(t, "bob@corp.example", func() string {
		c.Apply("a", []Report{r})
		return c.Lookup("2").Owner
	}())
}
