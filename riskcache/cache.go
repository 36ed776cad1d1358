package riskcache

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
//
// Device ids that are canonical GUIDs (the form of Entra device ids) are
// matched case-insensitively and stored packed into 16 bytes; other ids are
// matched exactly.
type Cache struct {
	size   int
	maxAge atomic.Int64 // nanoseconds; a reload may change it
	now    func() time.Time
	keys   keyer
	// base is when the cache was made, read from the real clock, when Now
	// is the real clock (Options.Now nil); otherwise zero. Look-ups then
	// judge staleness by the monotonic clock since base (see syncMark),
	// which costs about half as much to read as time.Now.
	base time.Time

	// mu serialises SetVendors; readers only load vendors.
	mu      sync.Mutex
	vendors atomic.Pointer[[]*vendorStore]
}

// record is the compact per-device value: 24 bytes, which keeps a
// devTable slot at 64 bytes (one cache line). Owner, platform and OS
// version are shared by many devices, so they are interned per vendor and
// referenced by index.
// Timestamps are unix seconds (0 = unknown), which last until 2106.
type record struct {
	updated uint32
	since   uint32
	owner   uint32 // index into vendorStore.owners
	prof    uint32 // index into vendorStore.profiles
	gen     uint32
	level   policy.Level
}

// alias maps a device's alternative id (Graph's easDeviceId) to its
// primary id's key. text is the alternative id when it is not a GUID.
type alias struct {
	id   devKey
	gen  uint32
	text string
}

// secs converts t to record seconds: 0 for the zero time, clamped to the
// range a uint32 holds otherwise.
func secs(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	return clampSecs(t.Unix())
}

func clampSecs(u int64) uint32 {
	return uint32(min(max(u, 1), math.MaxUint32))
}

// secsTime is secs reversed.
func secsTime(s uint32) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}

// unixTime converts unix seconds (0 = unknown) to a time.
func unixTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// devKey is what the cache keys a device id (or alternative id) by: a
// canonical GUID (8-4-4-4-12 hex digits, in either case; the form of Entra
// device ids) is its 16 bytes, any other id a keyed 128-bit hash of it, the
// text of which the vendor keeps aside (for the state file). Keys are
// values, so the device table holds them inline: no allocation and no
// pointer per device. (A hash equal to another id's key is as likely as guessing a
// random 128-bit number, with keys the process chose at random.)
type devKey [16]byte

// keyer makes keys; one per Cache, so that a key is computed once per
// look-up for every vendor.
type keyer struct{ seed0, seed1 maphash.Seed }

func newKeyer() keyer { return keyer{maphash.MakeSeed(), maphash.MakeSeed()} }

// key returns id's key and whether id is a GUID.
func (kr keyer) key(id string) (k devKey, guid bool) {
	if len(id) == guidTextLen && packGUID(&k, id) {
		return k, true
	}
	binary.LittleEndian.PutUint64(k[:8], maphash.String(kr.seed0, id))
	binary.LittleEndian.PutUint64(k[8:], maphash.String(kr.seed1, id))
	return k, false
}

const guidTextLen = 36

// packGUID parses the 36-byte s as a GUID into dst. It decodes eight hex
// digits at a time in a uint64 (SWAR): a look-up spends ~10 ns here rather
// than ~60 with a table per digit.
func packGUID(dst *devKey, s string) bool {
	b := (*[guidTextLen]byte)(unsafe.Pointer(unsafe.StringData(s)))
	if b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return false
	}
	le := binary.LittleEndian
	a, ok0 := hex8(le.Uint64(b[0:8]))
	c, ok1 := hex8(uint64(le.Uint32(b[9:13])) | uint64(le.Uint32(b[14:18]))<<32)
	d, ok2 := hex8(uint64(le.Uint32(b[19:23])) | uint64(le.Uint32(b[24:28]))<<32)
	e, ok3 := hex8(le.Uint64(b[28:36]))
	le.PutUint32(dst[0:4], a)
	le.PutUint32(dst[4:8], c)
	le.PutUint32(dst[8:12], d)
	le.PutUint32(dst[12:16], e)
	return ok0 && ok1 && ok2 && ok3
}

// hex8 decodes the eight hex digits (either case) in x, the first in its
// lowest byte, into four bytes, the first in the lowest byte of the result.
func hex8(x uint64) (uint32, bool) {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	// geq(v, lo) has a byte's high bit set where v's byte is >= lo, for
	// bytes below 0x80 (checked apart): no byte's sum carries into the next.
	geq := func(v uint64, lo uint64) uint64 { return (v + (0x80-lo)*ones) & high }
	l := x | 0x20*ones // lower-cases letters; digits already have 0x20
	digit := geq(x, '0') &^ geq(x, '9'+1)
	alpha := geq(l, 'a') &^ geq(l, 'f'+1)
	ok := x&high == 0 && digit|alpha == high
	n := x&(0x0f*ones) + (alpha>>7)*9 // each byte its digit's value
	n = (n<<4 | n>>8) & 0x00ff00ff00ff00ff
	n = (n | n>>8) & 0x0000ffff0000ffff
	n = n | n>>16
	return uint32(n), ok
}

// guidText formats a GUID key in lower case.
func guidText(k devKey) string {
	const digits = "0123456789abcdef"
	var b [guidTextLen]byte
	j := 0
	for _, c := range k {
		if j == 8 || j == 13 || j == 18 || j == 23 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = digits[c>>4], digits[c&15]
		j += 2
	}
	return string(b[:])
}

// readStripes is how many read locks guard one vendor's data. A look-up
// read-locks one of them, chosen by its key, so that parallel look-ups
// rarely write to the same cache line; a writer locks them all.
const readStripes = 8

type stripe struct {
	sync.RWMutex
	_ [128 - unsafe.Sizeof(sync.RWMutex{})]byte // own cache lines
}

// stripedRWMutex is a reader/writer lock whose readers spread over stripes.
type stripedRWMutex struct{ s [readStripes]stripe }

// Lock locks every stripe, excluding all readers.
func (m *stripedRWMutex) Lock() {
	for i := range m.s {
		m.s[i].Lock()
	}
}

// Unlock undoes Lock.
func (m *stripedRWMutex) Unlock() {
	for i := range m.s {
		m.s[i].Unlock()
	}
}

// RLock read-locks one stripe, which is enough to exclude writers.
func (m *stripedRWMutex) RLock() { m.s[0].RLock() }

// RUnlock undoes RLock.
func (m *stripedRWMutex) RUnlock() { m.s[0].RUnlock() }

// stripeOf chooses k's stripe.
func stripeOf(k devKey) int { return int(k[15]^k[7]) % readStripes }

// strTable interns owners: each distinct string is stored once and
// reference-counted, so that strings no device uses any more are freed. It
// is an open-addressing hash table (linear probing) of uint32 slots whose
// low idxBits bits hold the string's index+1 (0 = empty) and whose other
// bits hold bits of its hash, so that a probe rarely compares strings. It
// costs a few bytes per string besides the string itself.
type strTable struct {
	seed    maphash.Seed
	idxBits uint
	slots   []uint32
	vals    []string
	refs    []uint32
	free    []uint32
	live    int
}

func newStrTable(size int) strTable {
	return strTable{seed: maphash.MakeSeed(), idxBits: min(uint(bits.Len(uint(size)+2)), 32)}
}

func (t *strTable) idxMask() uint32 { return uint32(1<<t.idxBits - 1) }

// tag is the part of a slot that holds hash bits.
func (t *strTable) tag(h uint64) uint32 {
	if t.idxBits >= 32 {
		return 0
	}
	return uint32(h>>(32+t.idxBits)) << t.idxBits
}

// get returns s's index, adding a reference.
func (t *strTable) get(s string) uint32 {
	if (t.live+1)*4 > len(t.slots)*3 {
		t.rehash(max(2*len(t.slots), 64), t.idxBits)
	}
	if len(t.free) == 0 && uint64(len(t.vals))+2 > 1<<t.idxBits {
		t.rehash(len(t.slots), t.idxBits+1)
	}
	h := maphash.String(t.seed, s)
	tag, mask := t.tag(h), uint64(len(t.slots)-1)
	for i := h & mask; ; i = (i + 1) & mask {
		v := t.slots[i]
		if v == 0 {
			idx := t.add(strings.Clone(s)) // do not pin a larger decoded buffer
			t.slots[i] = tag | (idx + 1)
			return idx
		}
		if v&^t.idxMask() == tag {
			if idx := v&t.idxMask() - 1; t.vals[idx] == s {
				t.refs[idx]++
				return idx
			}
		}
	}
}

func (t *strTable) add(s string) uint32 {
	t.live++
	if n := len(t.free); n > 0 {
		idx := t.free[n-1]
		t.free = t.free[:n-1]
		t.vals[idx], t.refs[idx] = s, 1
		return idx
	}
	t.vals = append(t.vals, s)
	t.refs = append(t.refs, 1)
	return uint32(len(t.vals) - 1)
}

// release drops a reference to the string at idx, freeing it with the last.
func (t *strTable) release(idx uint32) {
	if t.refs[idx]--; t.refs[idx] > 0 {
		return
	}
	mask := uint64(len(t.slots) - 1)
	i := maphash.String(t.seed, t.vals[idx]) & mask
	for t.slots[i]&t.idxMask() != idx+1 {
		i = (i + 1) & mask
	}
	// Backward-shift deletion: move up every later entry of the cluster
	// whose probe sequence passes the emptied slot.
	for j := i; ; {
		j = (j + 1) & mask
		v := t.slots[j]
		if v == 0 {
			break
		}
		home := maphash.String(t.seed, t.vals[v&t.idxMask()-1]) & mask
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = v
			i = j
		}
	}
	t.slots[i] = 0
	t.vals[idx] = ""
	t.free = append(t.free, idx)
	t.live--
}

func (t *strTable) rehash(n int, idxBits uint) {
	t.idxBits = min(idxBits, 32)
	t.slots = make([]uint32, n)
	mask := uint64(n - 1)
	for idx, s := range t.vals {
		if t.refs[idx] == 0 {
			continue
		}
		h := maphash.String(t.seed, s)
		i := h & mask
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = t.tag(h) | uint32(idx+1)
	}
}

// profile is a platform and OS version pair: few distinct pairs exist.
type profile struct{ platform, osVersion string }

// profileTable interns profiles, reference-counted like strTable.
type profileTable struct {
	idx  map[profile]uint32
	vals []profile
	refs []uint32
	free []uint32
}

func (t *profileTable) get(platform, osVersion string) uint32 {
	p := profile{platform, osVersion}
	if i, ok := t.idx[p]; ok {
		t.refs[i]++
		return i
	}
	p = profile{strings.Clone(platform), strings.Clone(osVersion)}
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
		t.vals[i], t.refs[i] = p, 1
	} else {
		i = uint32(len(t.vals))
		t.vals = append(t.vals, p)
		t.refs = append(t.refs, 1)
	}
	t.idx[p] = i
	return i
}

func (t *profileTable) release(i uint32) {
	if t.refs[i]--; t.refs[i] == 0 {
		delete(t.idx, t.vals[i])
		t.vals[i] = profile{}
		t.free = append(t.free, i)
	}
}

// vendorStore is one vendor's devices. mu guards everything but name and
// lastSync.
type vendorStore struct {
	name string

	keys     keyer
	mu       stripedRWMutex
	devices  devTable
	aliases  *simplelru.LRU[devKey, alias]
	owners   strTable
	profiles profileTable
	counts   [5]int
	gen      uint32
	// devText holds the device ids whose keys are hashes.
	devText map[devKey]string

	// lastSync is the unix-nano time of the last successful sync (or of
	// the restored state); 0 means never.
	lastSync atomic.Int64
	// mark is the last MarkSynced time on the monotonic clock, when it had
	// a monotonic reading and the cache reads the real clock; nil
	// otherwise. It only counts while lastSync still holds its wall time.
	mark atomic.Pointer[syncMark]
}

// syncMark is a sync time on both clocks: wall is unix nanoseconds, mono
// the monotonic time since Cache.base.
type syncMark struct{ wall, mono int64 }

// New returns a cache for opts.Vendors.
func New(opts Options) *Cache {
	c := &Cache{size: opts.Size, now: opts.Now, keys: newKeyer()}
	c.maxAge.Store(int64(opts.MaxAge))
	if c.size <= 0 {
		c.size = DefaultCacheSize
	}
	if c.now == nil {
		c.now = time.Now
		c.base = time.Now()
	}
	c.SetVendors(opts.Vendors)
	return c
}

func (c *Cache) newStore(name string) *vendorStore {
	s := &vendorStore{
		name:     name,
		keys:     c.keys,
		owners:   newStrTable(c.size),
		profiles: profileTable{idx: map[profile]uint32{}},
		devText:  map[devKey]string{},
	}
	// The callback runs for every removal (eviction, remove, removeOldest).
	s.devices = newDevTable(c.size, maphash.MakeSeed(), func(d *devSlot) {
		s.counts[d.rec.level]--
		s.owners.release(d.rec.owner)
		s.profiles.release(d.rec.prof)
		if len(s.devText) > 0 {
			delete(s.devText, d.key)
		}
	})
	// NewLRU only fails for a non-positive size, which New rules out.
	s.aliases, _ = simplelru.NewLRU[devKey, alias](c.size, nil)
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
	maxAge := c.maxAge.Load()
	return maxAge <= 0 || now-last <= maxAge
}

// Lookup returns the merged risk of the device with the given id (primary
// or alternative). The worst level among fresh vendors wins; when every
// vendor that knows the device is stale, the worst stale report is returned
// with Stale set. Ties go to the vendor listed first.
func (c *Cache) Lookup(id string) Risk { return c.lookup(id, lookupClock{c: c}) }

// LookupAt is Lookup with the time already read by the caller (the proxy
// reads the clock once per request): staleness is judged at now.
func (c *Cache) LookupAt(id string, now time.Time) Risk {
	return c.lookup(id, lookupClock{c: c, wall: now.UnixNano(), haveWall: true})
}

// lookupClock reads the clock for a look-up at most once, and only if some
// vendor's freshness depends on it.
type lookupClock struct {
	c                  *Cache
	wall, mono         int64
	haveWall, haveMono bool
}

// fresh reports whether s's data counts as fresh now.
func (lc *lookupClock) fresh(s *vendorStore) bool {
	last := s.lastSync.Load()
	if last == 0 {
		return false
	}
	maxAge := lc.c.maxAge.Load()
	if maxAge <= 0 {
		return true
	}
	if !lc.haveWall {
		if m := s.mark.Load(); m != nil && m.wall == last {
			if !lc.haveMono {
				lc.mono, lc.haveMono = int64(time.Since(lc.c.base)), true
			}
			return lc.mono-m.mono <= maxAge
		}
		lc.wall, lc.haveWall = lc.c.now().UnixNano(), true
	}
	return lc.wall-last <= maxAge
}

func (c *Cache) lookup(id string, clock lookupClock) Risk {
	key, _ := c.keys.key(id)
	si := stripeOf(key)
	var (
		best      record
		bestStore *vendorStore
		bestFresh bool
		bestOwner string
		bestProf  profile
	)
	for _, s := range *c.vendors.Load() {
		mu := &s.mu.s[si]
		mu.RLock()
		d := s.devices.get(key)
		if d == nil && s.aliases.Len() > 0 {
			if a, aok := s.aliases.Peek(key); aok {
				d = s.devices.get(a.id)
			}
		}
		var (
			r     record
			owner string
			prof  profile
			ok    = d != nil
		)
		if ok {
			r, owner, prof = d.rec, d.owner, s.profiles.vals[d.rec.prof]
		}
		mu.RUnlock()
		if !ok {
			continue
		}
		f := clock.fresh(s)
		switch {
		case bestStore == nil,
			f && !bestFresh,
			f == bestFresh && r.level > best.level:
			best, bestStore, bestFresh = r, s, f
			bestOwner, bestProf = owner, prof
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
		Platform:  bestProf.platform,
		OSVersion: bestProf.osVersion,
		UpdatedAt: secsTime(best.updated),
		Since:     secsTime(best.since),
	}
}

// applyBatch is how many reports Apply writes per lock, so that look-ups
// wait at most for that many writes (tens of microseconds).
const applyBatch = 64

// Apply adds, updates or (Deleted) removes reports from vendor and returns
// how many it applied. A device keeps its Since while its level does not
// change. Reports for an unconfigured vendor or without a device id are
// ignored. Apply locks the vendor for a batch of reports at a time, never
// for all of a long list.
func (c *Cache) Apply(vendor string, reports []Report) int {
	s := c.store(vendor)
	if s == nil {
		return 0
	}
	now := secs(c.now())
	n := 0
	for len(reports) > 0 {
		batch := reports[:min(applyBatch, len(reports))]
		reports = reports[len(batch):]
		s.mu.Lock()
		for i := range batch {
			if s.apply(&batch[i], now, 0) {
				n++
			}
		}
		s.mu.Unlock()
		if len(reports) > 0 {
			// A look-up that waited for this batch is queued to run on
			// this goroutine's P after it; let it run now rather than
			// after the whole list.
			runtime.Gosched()
		}
	}
	return n
}

// apply writes one report at now (record seconds); since, when not zero,
// is restored as is. s.mu must be held.
func (s *vendorStore) apply(r *Report, now, since uint32) bool {
	if r.DeviceID == "" {
		return false
	}
	key, guid := s.keys.key(r.DeviceID)
	if r.Deleted {
		s.devices.remove(key)
		for _, a := range r.AltIDs {
			ak, _ := s.keys.key(a)
			if cur, ok := s.aliases.Peek(ak); ok && cur.id == key {
				s.aliases.Remove(ak)
			}
		}
		return true
	}
	level := r.Level
	if level > policy.LevelHigh {
		level = policy.LevelUnknown
	}
	rec := record{updated: secs(r.UpdatedAt), gen: s.gen, level: level}
	d, existed := s.devices.put(key)
	old := d.rec
	// An update usually keeps the owner and profile: reuse their
	// references without hashing.
	sameOwner := existed && d.owner == r.User
	if sameOwner {
		rec.owner = old.owner
	} else {
		rec.owner = s.owners.get(r.User)
	}
	sameProf := existed && s.profiles.vals[old.prof] == profile{r.Platform, r.OSVersion}
	if sameProf {
		rec.prof = old.prof
	} else {
		rec.prof = s.profiles.get(r.Platform, r.OSVersion)
	}
	switch {
	case since != 0:
		rec.since = since
	case existed && old.level == level:
		rec.since = old.since
	case rec.updated != 0 && !existed:
		// A vendor clock ahead of ours must not extend a grace period.
		rec.since = min(rec.updated, now)
	default:
		// The level changed now, as far as riskgate can tell; the vendor's
		// timestamp may predate the change (or be missing).
		rec.since = now
	}
	s.counts[level]++
	if existed {
		s.counts[old.level]--
		if !sameOwner {
			s.owners.release(old.owner)
		}
		if !sameProf {
			s.profiles.release(old.prof)
		}
	}
	d.rec, d.owner = rec, s.owners.vals[rec.owner]
	if !existed && !guid {
		s.devText[key] = r.DeviceID
	}
	for _, a := range r.AltIDs {
		if a == "" || a == r.DeviceID {
			continue
		}
		s.addAlias(a, key)
	}
	return true
}

// addAlias maps the alternative id a to the device key. s.mu must be held.
func (s *vendorStore) addAlias(a string, key devKey) {
	ak, guid := s.keys.key(a)
	if ak == key {
		return // the primary id in another case
	}
	v := alias{id: key, gen: s.gen}
	if !guid {
		v.text = a
	}
	s.aliases.Add(ak, v)
}

// deviceText returns the device id key was made of. s.mu must be held.
func (s *vendorStore) deviceText(key devKey) string {
	if t, ok := s.devText[key]; ok {
		return t
	}
	return guidText(key)
}

// restoreAlias adds an alternative id read from the state file.
func (s *vendorStore) restoreAlias(altID, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key, _ := s.keys.key(id); s.devices.get(key) != nil {
		s.addAlias(altID, key)
	}
}

// restoreDevice adds a device read from the state file, keeping its since
// (unix seconds).
func (s *vendorStore) restoreDevice(r *Report, now time.Time, since int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := uint32(0)
	if since != 0 {
		sc = clampSecs(since)
	}
	s.apply(r, secs(now), sc)
}

// deviceLine fills l with the device stored under key, for the state file.
// s.mu must be read-locked.
func (s *vendorStore) deviceLine(key devKey, l *stateLine) bool {
	d := s.devices.get(key)
	if d == nil {
		return false
	}
	r := d.rec
	p := s.profiles.vals[r.prof]
	*l = stateLine{ID: s.deviceText(key), Level: uint8(r.level), User: d.owner,
		Platform: p.platform, OS: p.osVersion, Updated: int64(r.updated), Since: int64(r.since)}
	return true
}

// aliasLine fills l with the alternative id stored under key, for the
// state file. s.mu must be read-locked.
func (s *vendorStore) aliasLine(key devKey, l *stateLine) bool {
	a, ok := s.aliases.Peek(key)
	if !ok || s.devices.get(a.id) == nil {
		return false
	}
	t := a.text
	if t == "" {
		t = guidText(key)
	}
	*l = stateLine{Alias: t, ID: s.deviceText(a.id)}
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

// sweepBatch is how many devices Sweep removes per lock.
const sweepBatch = 1024

// Sweep ends the full sync gen of vendor: devices (and alternative ids) not
// written since BeginSync returned gen are removed. It returns how many
// devices it removed. A sweep for an outdated generation does nothing.
//
// Writes move a device to the newest end of its write-order list (see
// devTable) and Lookup never reorders it, so the devices not written since
// BeginSync are exactly those at the oldest end; Sweep only visits them, a
// batch per lock.
func (c *Cache) Sweep(vendor string, gen Generation) int {
	s := c.store(vendor)
	if s == nil {
		return 0
	}
	n := 0
	for more := true; more; {
		var k int
		k, more = s.sweep(uint32(gen))
		n += k
	}
	return n
}

// sweep removes up to sweepBatch devices and alternative ids older than
// gen, and reports whether more may remain.
func (s *vendorStore) sweep(gen uint32) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return 0, false
	}
	n, done := 0, 0
	for done < sweepBatch {
		d := s.devices.oldest()
		if d == nil || d.rec.gen == gen {
			break
		}
		s.devices.removeOldest()
		n++
		done++
	}
	for done < sweepBatch {
		_, a, ok := s.aliases.GetOldest()
		if !ok || a.gen == gen {
			break
		}
		s.aliases.RemoveOldest()
		done++
	}
	return n, done == sweepBatch
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
		wall := at.UnixNano()
		var m *syncMark
		// at != at.Round(0) when at has a monotonic reading (Round(0) strips
		// it), so at.Sub(c.base) is on the monotonic clock.
		if !c.base.IsZero() && at != at.Round(0) {
			m = &syncMark{wall: wall, mono: int64(at.Sub(c.base))}
		}
		s.mark.Store(m)
		s.lastSync.Store(wall)
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

// devSlot is one device in a devTable: 64 bytes, so that with the slab
// (a large allocation, hence page-aligned) a look-up reads one cache line
// for the whole device. The owner's text is held here as well as its
// interned index, so that a look-up does not also read the owner table.
type devSlot struct {
	key   devKey
	owner string
	rec   record
	// prev and next link the slots in write order (1-based; 0 = none):
	// next points to the more recently written slot. Free slots are linked
	// by next.
	prev, next uint32
}

// devTable is one vendor's device index: devices in a slab of 64-byte
// slots, found by an open-addressing hash table (linear probing) of uint32
// entries, each a slot number+1 in the low idxBits bits (0 = empty) and
// bits of the key's hash above them, so that a probe rarely reads a slot
// that does not match. A doubly-linked list through the slots keeps write
// order; when full, the least recently written device is evicted. It is
// what golang-lru's LRU was for devices, without the heap object and map
// entry per device: a look-up touches the index and one slot.
type devTable struct {
	cap     int // most devices held
	s0, s1  uint64
	idxBits uint
	index   []uint32
	slots   []devSlot
	free    uint32 // first free slot+1
	// head is the least recently written slot+1, tail the most recently
	// written.
	head, tail uint32
	n          int
	onRemove   func(*devSlot)
}

func newDevTable(capacity int, seed maphash.Seed, onRemove func(*devSlot)) devTable {
	return devTable{
		cap:      capacity,
		s0:       maphash.String(seed, "devTable0"),
		s1:       maphash.String(seed, "devTable1"),
		idxBits:  min(uint(bits.Len(uint(capacity)+1)), 32),
		onRemove: onRemove,
	}
}

func (t *devTable) hash(k *devKey) uint64 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(k[:8])^t.s0, binary.LittleEndian.Uint64(k[8:])^t.s1)
	return hi ^ lo
}

func (t *devTable) idxMask() uint32 { return uint32(1<<t.idxBits - 1) }

func (t *devTable) tag(h uint64) uint32 {
	if t.idxBits >= 32 {
		return 0
	}
	return uint32(h>>(32+t.idxBits)) << t.idxBits
}

// find returns the index position and slot+1 of k, or 0 for the slot.
func (t *devTable) find(k *devKey) (pos int, slot uint32) {
	if len(t.index) == 0 {
		return 0, 0
	}
	h := t.hash(k)
	tag, mask, im := t.tag(h), uint64(len(t.index)-1), t.idxMask()
	for i := h & mask; ; i = (i + 1) & mask {
		v := t.index[i]
		if v == 0 {
			return int(i), 0
		}
		if v&^im == tag && t.slots[v&im-1].key == *k {
			return int(i), v & im
		}
	}
}

// get returns k's slot, or nil.
func (t *devTable) get(k devKey) *devSlot {
	if _, i := t.find(&k); i != 0 {
		return &t.slots[i-1]
	}
	return nil
}

// Len returns the number of devices.
func (t *devTable) Len() int { return t.n }

// put returns k's slot, adding an empty one if k is new (evicting the
// least recently written device if full), and makes it the most recently
// written. existed reports whether k was there.
func (t *devTable) put(k devKey) (d *devSlot, existed bool) {
	if _, i := t.find(&k); i != 0 {
		t.unlink(i)
		t.linkTail(i)
		return &t.slots[i-1], true
	}
	if t.n >= t.cap {
		t.removeSlot(t.head)
	}
	if (t.n+1)*4 > len(t.index)*3 {
		t.rehash(max(2*len(t.index), 64))
	}
	i := t.free
	if i != 0 {
		t.free = t.slots[i-1].next
	} else {
		if len(t.slots) == cap(t.slots) {
			grown := make([]devSlot, len(t.slots), min(max(2*cap(t.slots), 64), t.cap))
			copy(grown, t.slots)
			t.slots = grown
		}
		t.slots = append(t.slots, devSlot{})
		i = uint32(len(t.slots))
	}
	d = &t.slots[i-1]
	*d = devSlot{key: k}
	h := t.hash(&k)
	mask := uint64(len(t.index) - 1)
	p := h & mask
	for t.index[p] != 0 {
		p = (p + 1) & mask
	}
	t.index[p] = t.tag(h) | i
	t.n++
	t.linkTail(i)
	return d, false
}

func (t *devTable) linkTail(i uint32) {
	d := &t.slots[i-1]
	d.prev, d.next = t.tail, 0
	if t.tail != 0 {
		t.slots[t.tail-1].next = i
	} else {
		t.head = i
	}
	t.tail = i
}

func (t *devTable) unlink(i uint32) {
	d := &t.slots[i-1]
	if d.prev != 0 {
		t.slots[d.prev-1].next = d.next
	} else {
		t.head = d.next
	}
	if d.next != 0 {
		t.slots[d.next-1].prev = d.prev
	} else {
		t.tail = d.prev
	}
}

// remove removes k, reporting whether it was there.
func (t *devTable) remove(k devKey) bool {
	_, i := t.find(&k)
	if i == 0 {
		return false
	}
	t.removeSlot(i)
	return true
}

// oldest returns the least recently written device, or nil.
func (t *devTable) oldest() *devSlot {
	if t.head == 0 {
		return nil
	}
	return &t.slots[t.head-1]
}

// removeOldest removes the least recently written device.
func (t *devTable) removeOldest() {
	if t.head != 0 {
		t.removeSlot(t.head)
	}
}

// removeSlot removes slot i (1-based), calling onRemove first.
func (t *devTable) removeSlot(i uint32) {
	d := &t.slots[i-1]
	if t.onRemove != nil {
		t.onRemove(d)
	}
	pos, _ := t.find(&d.key)
	t.unlink(i)
	*d = devSlot{next: t.free}
	t.free = i
	t.n--
	// Backward-shift deletion: move up every later entry of the cluster
	// whose probe sequence passes the emptied position.
	mask := uint64(len(t.index) - 1)
	im := t.idxMask()
	p := uint64(pos)
	for j := p; ; {
		j = (j + 1) & mask
		v := t.index[j]
		if v == 0 {
			break
		}
		home := t.hash(&t.slots[v&im-1].key) & mask
		if (j > p && (home <= p || home > j)) || (j < p && home <= p && home > j) {
			t.index[p] = v
			p = j
		}
	}
	t.index[p] = 0
}

func (t *devTable) rehash(n int) {
	t.index = make([]uint32, n)
	mask := uint64(n - 1)
	for i := t.head; i != 0; i = t.slots[i-1].next {
		h := t.hash(&t.slots[i-1].key)
		p := h & mask
		for t.index[p] != 0 {
			p = (p + 1) & mask
		}
		t.index[p] = t.tag(h) | i
	}
}

// keys returns the keys from the least to the most recently written.
func (t *devTable) keys() []devKey {
	ks := make([]devKey, 0, t.n)
	for i := t.head; i != 0; i = t.slots[i-1].next {
		ks = append(ks, t.slots[i-1].key)
	}
	return ks
}

// SetMaxAge changes risk.max_age on a running cache (a config reload).
func (c *Cache) SetMaxAge(d time.Duration) { c.maxAge.Store(int64(d)) }
