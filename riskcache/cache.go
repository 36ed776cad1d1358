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
	maxAge time.Duration
	now    func() time.Time
	keys   keyer

	// mu serialises SetVendors; readers only load vendors.
	mu      sync.Mutex
	vendors atomic.Pointer[[]*vendorStore]
}

// record is the compact per-device value: 24 bytes, which keeps the LRU's
// list entry (pointers, key, value and its unused expiry fields) in the
// 96-byte size class. Owner, platform and OS version are shared by many
// devices, so they are interned per vendor and referenced by index.
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
// values, so the LRU holds them inline: no allocation and no pointer per
// device. (A hash equal to another id's key is as likely as guessing a
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

// packGUID parses the 36-byte s as a GUID into dst.
func packGUID(dst *devKey, s string) bool {
	if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	// Offsets of the 16 digit pairs.
	const pairs = "\x00\x02\x04\x06\x09\x0b\x0e\x10\x13\x15\x18\x1a\x1c\x1e\x20\x22"
	bad := byte(0)
	for j := range len(pairs) {
		i := int(pairs[j])
		hi, lo := unhexTable[s[i]], unhexTable[s[i+1]]
		bad |= hi | lo
		dst[j] = hi<<4 | lo&15
	}
	return bad&0xf0 == 0
}

// unhexTable maps a byte to its hex digit's value, or to 0xff.
const unhexTable = "" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\xff\xff\xff\xff\xff\xff" +
	"\xff\x0a\x0b\x0c\x0d\x0e\x0f\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\x0a\x0b\x0c\x0d\x0e\x0f\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"

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
	devices  *simplelru.LRU[devKey, record]
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
}

// New returns a cache for opts.Vendors.
func New(opts Options) *Cache {
	c := &Cache{size: opts.Size, maxAge: opts.MaxAge, now: opts.Now, keys: newKeyer()}
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
	s := &vendorStore{
		name:     name,
		keys:     c.keys,
		owners:   newStrTable(c.size),
		profiles: profileTable{idx: map[profile]uint32{}},
		devText:  map[devKey]string{},
	}
	// NewLRU only fails for a non-positive size, which New rules out. The
	// callbacks run for every removal (eviction, Remove, RemoveOldest).
	s.devices, _ = simplelru.NewLRU(c.size, func(k devKey, r record) {
		s.counts[r.level]--
		s.owners.release(r.owner)
		s.profiles.release(r.prof)
		delete(s.devText, k)
	})
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
	return c.maxAge <= 0 || now-last <= int64(c.maxAge)
}

// Lookup returns the merged risk of the device with the given id (primary
// or alternative). The worst level among fresh vendors wins; when every
// vendor that knows the device is stale, the worst stale report is returned
// with Stale set. Ties go to the vendor listed first.
func (c *Cache) Lookup(id string) Risk { return c.lookup(id, 0, false) }

// LookupAt is Lookup with the time already read by the caller (the proxy
// reads the clock once per request): staleness is judged at now.
func (c *Cache) LookupAt(id string, now time.Time) Risk {
	return c.lookup(id, now.UnixNano(), true)
}

func (c *Cache) lookup(id string, now int64, haveNow bool) Risk {
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
		r, ok := s.devices.Peek(key)
		if !ok {
			if a, aok := s.aliases.Peek(key); aok {
				r, ok = s.devices.Peek(a.id)
			}
		}
		var (
			owner string
			prof  profile
		)
		if ok {
			owner, prof = s.owners.vals[r.owner], s.profiles.vals[r.prof]
		}
		mu.RUnlock()
		if !ok {
			continue
		}
		if !haveNow {
			now, haveNow = c.now().UnixNano(), true
		}
		f := c.fresh(s, now)
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
		s.devices.Remove(key)
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
	old, existed := s.devices.Peek(key)
	// An update usually keeps the owner and profile: reuse their
	// references without hashing.
	sameOwner := existed && s.owners.vals[old.owner] == r.User
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
		rec.since = rec.updated
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
	s.devices.Add(key, rec)
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
	if key, _ := s.keys.key(id); s.devices.Contains(key) {
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
	r, ok := s.devices.Peek(key)
	if !ok {
		return false
	}
	p := s.profiles.vals[r.prof]
	*l = stateLine{ID: s.deviceText(key), Level: uint8(r.level), User: s.owners.vals[r.owner],
		Platform: p.platform, OS: p.osVersion, Updated: int64(r.updated), Since: int64(r.since)}
	return true
}

// aliasLine fills l with the alternative id stored under key, for the
// state file. s.mu must be read-locked.
func (s *vendorStore) aliasLine(key devKey, l *stateLine) bool {
	a, ok := s.aliases.Peek(key)
	if !ok || !s.devices.Contains(a.id) {
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
// Writes move a device to the front of its LRU list and Lookup never
// reorders it, so the devices not written since BeginSync are exactly those
// at the back of the list; Sweep only visits them, a batch per lock.
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
		_, r, ok := s.devices.GetOldest()
		if !ok || r.gen == gen {
			break
		}
		s.devices.RemoveOldest()
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
