package riskcache

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
)

// benchDevices is the scale of the performance targets.
const benchDevices = 1_000_000

// benchID is a device id shaped like an Entra device id (a GUID).
func benchID(i int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i*7919)
}

// benchReports are n realistic reports: GUID ids, owners with one or two
// devices (1.5 on average), a handful of platforms and OS versions.
func benchReports(n int) []Report {
	oses := []string{"17.4", "17.5", "18.0", "14", "15"}
	platforms := []string{"ios", "ios", "ios", "android", "android"}
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	rs := make([]Report, n)
	for i := range rs {
		rs[i] = Report{
			DeviceID:  benchID(i),
			Level:     policy.Level(1 + i%4),
			User:      benchOwner(i),
			Platform:  platforms[i%5],
			OSVersion: oses[i%5],
			UpdatedAt: at,
		}
	}
	return rs
}

// benchOwner is device i's owner: owners alternately have two devices and
// one.
func benchOwner(i int) string { return fmt.Sprintf("user%07d@corp.example", i*2/3) }

// lookupCache is built once for the look-up benchmarks: the testing
// package calls a benchmark several times, and building (and then
// collecting) 1,000,000 devices each time would measure the GC instead.
var lookupCache = sync.OnceValue(func() *Cache { return benchCache(benchDevices) })

func benchCache(n int) *Cache {
	c := New(Options{Size: n, MaxAge: time.Hour, Vendors: []string{"acme"}})
	rs := benchReports(n)
	for len(rs) > 0 {
		batch := rs[:min(1000, len(rs))]
		rs = rs[len(batch):]
		c.Apply("acme", batch)
	}
	c.MarkSynced("acme", time.Now())
	return c
}

// BenchmarkLookup is the request path: 1,000,000 cached devices, parallel
// lookups of known devices.
func BenchmarkLookup(b *testing.B) {
	c := lookupCache()
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = benchID(i * 241)
	}
	runtime.GC() // not during the timed look-ups
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) * 1000
		for pb.Next() {
			if !c.Lookup(ids[i%len(ids)]).Known {
				b.Fatal("device not found")
			}
			i++
		}
	})
}

// BenchmarkMemoryPerDevice reports the heap held per cached device at
// 1,000,000 devices (after GC, the reports themselves dropped), and the
// part of it that interning the owners costs.
func BenchmarkMemoryPerDevice(b *testing.B) {
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := benchCache(benchDevices)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.Len("acme") != benchDevices {
			b.Fatalf("cached %d devices", c.Len("acme"))
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchDevices, "B/device")
		runtime.KeepAlive(c)
		c = nil

		owners := make([]string, benchDevices)
		for i := range owners {
			owners[i] = benchOwner(i)
		}
		runtime.GC()
		runtime.ReadMemStats(&before)
		t := newStrTable(benchDevices)
		for _, o := range owners {
			t.get(o)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchDevices, "owners-B/device")
		runtime.KeepAlive(&t)
		runtime.KeepAlive(owners)
	}
}

// BenchmarkApply measures writes: a sync's pages of 1,000 reports applied
// to a vendor of 1,000,000 devices (updates of existing devices).
func BenchmarkApply(b *testing.B) {
	c := benchCache(benchDevices)
	rs := benchReports(benchDevices)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	applied := 0
	for i := range b.N {
		off := (i * 1000) % benchDevices
		applied += c.Apply("acme", rs[off:off+1000])
	}
	b.ReportMetric(float64(applied)/time.Since(start).Seconds(), "devices/s")
}

// BenchmarkLookupAt is the proxy's look-up: the request's clock reading is
// passed in rather than read again (time.Now costs ~70 ns on some VMs).
func BenchmarkLookupAt(b *testing.B) {
	c := lookupCache()
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = benchID(i * 241)
	}
	runtime.GC()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) * 1000
		for pb.Next() {
			if !c.LookupAt(ids[i%len(ids)], now).Known {
				b.Fatal("device not found")
			}
			i++
		}
	})
}

// TestLookupRealClockStaleness covers the real clock (Options.Now nil),
// whose look-ups judge staleness on the monotonic clock when the sync time
// has a monotonic reading and on the wall clock otherwise.
func TestLookupRealClockStaleness(t *testing.T) {
	id := benchID(1)
	tests := []struct {
		name      string
		synced    func() time.Time
		wantStale bool
	}{
		{"synced now", time.Now, false},
		{"synced now without monotonic reading", func() time.Time { return time.Now().Round(0) }, false},
		{"synced long ago", func() time.Time { return time.Now().Add(-2 * time.Hour) }, true},
		{"synced long ago without monotonic reading", func() time.Time { return time.Now().Add(-2 * time.Hour).Round(0) }, true},
		{"synced in the future", func() time.Time { return time.Now().Add(time.Hour / 2) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Options{Size: 10, MaxAge: time.Hour, Vendors: []string{"acme"}})
			require.Equal(t, 1, c.Apply("acme", []Report{{DeviceID: id, Level: policy.LevelLow}}))
			c.MarkSynced("acme", tt.synced())
			r := c.Lookup(id)
			require.True(t, r.Known)
			assert.Equal(t, tt.wantStale, r.Stale)
			// LookupAt judges at the time it is given.
			assert.Equal(t, tt.wantStale, c.LookupAt(id, time.Now()).Stale)
			assert.True(t, c.LookupAt(id, time.Now().Add(3*time.Hour)).Stale)
			// MaxAge zero: never stale once synced.
			c.SetMaxAge(0)
			assert.False(t, c.Lookup(id).Stale)
		})
	}
}
