package riskcache

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/riskgate/riskgate/policy"
)

// DefaultCacheSize is the per-vendor capacity used when Options.Size is zero.
const DefaultCacheSize = 100000

// Options configure a Cache.
type Options struct {
	// Size is the number of devices kept per vendor; the least recently
	// written device is evicted beyond it. Zero means DefaultCacheSize.
	Size int
	// MaxAge is how long a vendor's data stays fresh after its last
	// successful sync (risk.max_age). Zero means data never goes stale once
	// a vendor has synced (or been restored) once.
	MaxAge time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Vendors are the vendor names, in configuration order (which breaks
	// ties between vendors reporting the same level).
	Vendors []string
}

// Cache holds every vendor's device reports and merges them on Lookup. It is
// safe for concurrent use. Lookup takes only read locks and does not
// allocate, so it can sit on the request path.
type Cache struct {
	size   int
	maxAge time.Duration
	now    func() time.Time

	// mu serialises SetVendors; readers only load vendors.
	mu      sync.Mutex
	vendors atomic.Pointer[[]*vendorStore]
}

// record is the compact per-device value. Owner, platform and OS version
// are shared by many devices, so they are interned per vendor and
// referenced by index. With the LRU's entry overhead a record costs 112
// bytes per device, plus the key string and the map slot.
type record struct {
	updated int64 // unix seconds, 0 = unknown
	since   int64 // unix seconds
	owner   uint32
	plat    uint32
	os      uint32
	gen     uint32
	level   policy.Level
}

// interner stores each distinct string once, reference-counted so that
// strings no device uses any more are freed.
type interner struct {
	idx  map[string]uint32
	vals []string
	refs []int32
	free []uint32
}

func (in *interner) get(s string) uint32 {
	if i, ok := in.idx[s]; ok {
		in.refs[i]++
		return i
	}
	s = strings.Clone(s) // do not pin a larger decoded buffer
	var i uint32
	if n := len(in.free); n > 0 {
		i = in.free[n-1]
		in.free = in.free[:n-1]
		in.vals[i], in.refs[i] = s, 1
	} else {
		i = uint32(len(in.vals))
		in.vals = append(in.vals, s)
		in.refs = append(in.refs, 1)
	}
	in.idx[s] = i
	return i
}

func (in *interner) release(i uint32) {
	if in.refs[i]--; in.refs[i] == 0 {
		delete(in.idx, in.vals[i])
		in.vals[i] = ""
		in.free = append(in.free, i)
	}
}

// alias maps a device's alternative id (Graph's easDeviceId) to its
// primary id.
type alias struct {
	id  string
	gen uint32
}

// vendorStore is one vendor's devices. mu guards devices, aliases, counts
// and gen; lastSync is read without it.
type vendorStore struct {
	name string

	mu      sync.RWMutex
	devices *simplelru.LRU[string, record]
	aliases *simplelru.LRU[string, alias]
	counts  [5]int
	gen     uint32
	strs    interner

	// lastSync is the unix-nano time of the last successful sync (or of
	// the restored state); 0 means never.
	lastSync atomic.Int64
}

// New returns a cache for opts.Vendors.
func New(opts Options) *Cache {
	c := &Cache{size: opts.Size, maxAge: opts.MaxAge, now: opts.Now}
	if c.size <= 0 {
		c.size = DefaultCacheSize
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.SetVendors(opts.Vendors)
	return c
}

func (c *Cache) newStore(name string) *vendorStore {
	s := &vendorStore{name: name, strs: interner{idx: map[string]uint32{}}}
	// NewLRU only fails for a non-positive size, which New rules out. The
	// callback runs for every removal (eviction, Remove, RemoveOldest).
	s.devices, _ = simplelru.NewLRU(c.size, func(_ string, r record) {
		s.counts[r.level]--
		s.strs.release(r.owner)
		s.strs.release(r.plat)
		s.strs.release(r.os)
	})
	s.aliases, _ = simplelru.NewLRU[string, alias](c.size, nil)
	return s
}

// SetVendors changes the vendor list (configuration reload). Vendors still
// listed keep their data and sync state; others are dropped; new ones start
// empty and never synced.
func (c *Cache) SetVendors(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := map[string]*vendorStore{}
	if p := c.vendors.Load(); p != nil {
		for _, s := range *p {
			old[s.name] = s
		}
	}
	next := make([]*vendorStore, 0, len(names))
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		s := old[n]
		if s == nil {
			s = c.newStore(n)
		}
		next = append(next, s)
	}
	c.vendors.Store(&next)
}

// Vendors returns the vendor names in order.
func (c *Cache) Vendors() []string {
	vs := *c.vendors.Load()
	names := make([]string, len(vs))
	for i, s := range vs {
		names[i] = s.name
	}
	return names
}

func (c *Cache) store(vendor string) *vendorStore {
	for _, s := range *c.vendors.Load() {
		if s.name == vendor {
			return s
		}
	}
	return nil
}

// HasVendor reports whether vendor is configured.
func (c *Cache) HasVendor(vendor string) bool { return c.store(vendor) != nil }

// fresh reports whether s's data counts as fresh at now (unix nanos).
func (c *Cache) fresh(s *vendorStore, now int64) bool {
	last := s.lastSync.Load()
	if last == 0 {
		return false
	}
	return c.maxAge <= 0 || now-last <= int64(c.maxAge)
}

// Lookup returns the merged risk of the device with the given id (primary
// or alternative). The worst level among fresh vendors wins; when every
// vendor that knows the device is stale, the worst stale report is returned
// with Stale set. Ties go to the vendor listed first.
func (c *Cache) Lookup(id string) Risk {
	now := c.now().UnixNano()
	var (
		best                            record
		bestStore                       *vendorStore
		bestFresh                       bool
		bestOwner, bestPlatform, bestOS string
	)
	for _, s := range *c.vendors.Load() {
		s.mu.RLock()
		r, ok := s.devices.Peek(id)
		if !ok {
			if a, aok := s.aliases.Peek(id); aok {
				r, ok = s.devices.Peek(a.id)
			}
		}
		var owner, platform, osVersion string
		if ok {
			owner, platform, osVersion = s.strs.vals[r.owner], s.strs.vals[r.plat], s.strs.vals[r.os]
		}
		s.mu.RUnlock()
		if !ok {
			continue
		}
		f := c.fresh(s, now)
		switch {
		case bestStore == nil,
			f && !bestFresh,
			f == bestFresh && r.level > best.level:
			best, bestStore, bestFresh = r, s, f
			bestOwner, bestPlatform, bestOS = owner, platform, osVersion
		}
	}
	if bestStore == nil {
		return Risk{}
	}
	return Risk{
		Known:     true,
		Level:     best.level,
		Stale:     !bestFresh,
		Vendor:    bestStore.name,
		Owner:     bestOwner,
		Platform:  bestPlatform,
		OSVersion: bestOS,
		UpdatedAt: unixTime(best.updated),
		Since:     unixTime(best.since),
	}
}

func unixTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

func unixSeconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// Apply adds, updates or (Deleted) removes reports from vendor and returns
// how many it applied. A device keeps its Since while its level does not
// change. Reports for an unconfigured vendor or without a device id are
// ignored.
func (c *Cache) Apply(vendor string, reports []Report) int {
	s := c.store(vendor)
	if s == nil {
		return 0
	}
	now := c.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := range reports {
		if s.apply(&reports[i], now, time.Time{}) {
			n++
		}
	}
	return n
}

// apply writes one report; since, when not zero, is restored as is.
// s.mu must be held.
func (s *vendorStore) apply(r *Report, now, since time.Time) bool {
	if r.DeviceID == "" {
		return false
	}
	if r.Deleted {
		s.devices.Remove(r.DeviceID)
		for _, a := range r.AltIDs {
			if cur, ok := s.aliases.Peek(a); ok && cur.id == r.DeviceID {
				s.aliases.Remove(a)
			}
		}
		return true
	}
	level := r.Level
	if level > policy.LevelHigh {
		level = policy.LevelUnknown
	}
	rec := record{
		updated: unixSeconds(r.UpdatedAt),
		owner:   s.strs.get(r.User),
		plat:    s.strs.get(r.Platform),
		os:      s.strs.get(r.OSVersion),
		gen:     s.gen,
		level:   level,
	}
	old, existed := s.devices.Peek(r.DeviceID)
	switch {
	case !since.IsZero():
		rec.since = unixSeconds(since)
	case existed && old.level == level:
		rec.since = old.since
	case !r.UpdatedAt.IsZero() && !existed:
		rec.since = rec.updated
	default:
		// The level changed now, as far as riskgate can tell; the vendor's
		// timestamp may predate the change (or be missing).
		rec.since = now.Unix()
	}
	if existed {
		s.counts[old.level]--
		s.strs.release(old.owner)
		s.strs.release(old.plat)
		s.strs.release(old.os)
	}
	s.counts[level]++
	s.devices.Add(r.DeviceID, rec)
	for _, a := range r.AltIDs {
		if a != "" && a != r.DeviceID {
			s.aliases.Add(a, alias{id: r.DeviceID, gen: s.gen})
		}
	}
	return true
}

// Generation identifies one full sync of a vendor; see BeginSync.
type Generation uint32

// BeginSync starts a full sync of vendor: every device written from now on
// is stamped with the returned generation, and Sweep removes the devices
// that were not. This lets a full sync drop the devices a vendor no longer
// lists without building a second copy of its data.
func (c *Cache) BeginSync(vendor string) Generation {
	s := c.store(vendor)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	return Generation(s.gen)
}

// Sweep ends the full sync gen of vendor: devices (and alternative ids) not
// written since BeginSync returned gen are removed. It returns how many
// devices it removed. A sweep for an outdated generation does nothing.
//
// Writes move a device to the front of its LRU list and Lookup never
// reorders it, so the devices not written since BeginSync are exactly those
// at the back of the list; Sweep only visits them.
func (c *Cache) Sweep(vendor string, gen Generation) int {
	s := c.store(vendor)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if uint32(gen) != s.gen {
		return 0
	}
	n := 0
	for {
		_, r, ok := s.devices.GetOldest()
		if !ok || r.gen == s.gen {
			break
		}
		s.devices.RemoveOldest()
		n++
	}
	for {
		_, a, ok := s.aliases.GetOldest()
		if !ok || a.gen == s.gen {
			break
		}
		s.aliases.RemoveOldest()
	}
	return n
}

// ReplaceAll replaces vendor's devices with reports: a full sync in one call.
func (c *Cache) ReplaceAll(vendor string, reports []Report) {
	gen := c.BeginSync(vendor)
	c.Apply(vendor, reports)
	c.Sweep(vendor, gen)
}

// MarkSynced records a successful sync of vendor at at.
func (c *Cache) MarkSynced(vendor string, at time.Time) {
	if s := c.store(vendor); s != nil {
		s.lastSync.Store(at.UnixNano())
	}
}

// LastSync returns the time of vendor's last successful sync (or of its
// restored state), and false if it has none.
func (c *Cache) LastSync(vendor string) (time.Time, bool) {
	s := c.store(vendor)
	if s == nil {
		return time.Time{}, false
	}
	n := s.lastSync.Load()
	if n == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// Ready reports whether every vendor has synced once or been restored from
// the state file.
func (c *Cache) Ready() bool {
	for _, s := range *c.vendors.Load() {
		if s.lastSync.Load() == 0 {
			return false
		}
	}
	return true
}

// Fresh reports whether vendor's data is fresh now (synced within MaxAge).
func (c *Cache) Fresh(vendor string) bool {
	s := c.store(vendor)
	return s != nil && c.fresh(s, c.now().UnixNano())
}

// Counts returns vendor's number of devices per policy.Level (indexed by
// the level). It is maintained on every write, not computed by a scan.
func (c *Cache) Counts(vendor string) [5]int {
	s := c.store(vendor)
	if s == nil {
		return [5]int{}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.counts
}

// Len returns the number of devices vendor has in the cache.
func (c *Cache) Len(vendor string) int {
	s := c.store(vendor)
	if s == nil {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.devices.Len()
}
