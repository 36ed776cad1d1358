package riskcache

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
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
	assert.Equal(t, 1, s.owners.live, "the owner is stored once")
	assert.Len(t, s.profiles.idx, 1, "platform and OS version are stored once")
	r := rep("2", policy.LevelLow)
	r.User = "bob@corp.example"
	r.OSVersion = "18.0"
	c.Apply("a", []Report{r, rep("3", policy.LevelHigh)}) // updates 2, evicts 1
	assert.Equal(t, 2, s.owners.live)
	assert.Len(t, s.profiles.idx, 2)
	c.Apply("a", []Report{{DeviceID: "2", Deleted: true}, {DeviceID: "3", Deleted: true}})
	assert.Zero(t, s.owners.live)
	assert.Empty(t, s.profiles.idx)
	c.Apply("a", []Report{r})
	got := c.Lookup("2")
	assert.Equal(t, "bob@corp.example", got.Owner)
	assert.Equal(t, "18.0", got.OSVersion)
}

func TestStrTable(t *testing.T) {
	// Against a map, through growth, index widening and deletions that
	// shift clusters back.
	tab := newStrTable(1)
	want := map[string]int{}
	idx := map[string]uint32{}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		s := fmt.Sprintf("owner-%d", rnd.IntN(3000))
		if want[s] > 0 && rnd.IntN(2) == 0 {
			tab.release(idx[s])
			if want[s]--; want[s] == 0 {
				delete(want, s)
			}
			continue
		}
		got := tab.get(s)
		if want[s] > 0 {
			require.Equal(t, idx[s], got, "step %d: %s keeps its index", i, s)
		}
		idx[s] = got
		want[s]++
		require.Equal(t, s, tab.vals[got])
		require.Equal(t, len(want), tab.live)
	}
	for s, n := range want {
		require.Equal(t, uint32(n), tab.refs[idx[s]], s)
	}
}

func TestKeys(t *testing.T) {
	kr := newKeyer()
	tests := []struct {
		id   string
		guid bool
		same string // an id with the same key
	}{
		{"3f2504e0-4f89-11d3-9a0c-0305e82c3301", true, "3F2504E0-4F89-11D3-9A0C-0305E82C3301"},
		{"6B29FC40-ca47-1067-B31D-00DD010662DA", true, "6b29fc40-CA47-1067-b31d-00dd010662da"},
		{"3f2504e0-4f89-11d3-9a0c-0305e82c330g", false, ""},
		{"3f2504e0x4f89-11d3-9a0c-0305e82c3301", false, ""},
		{"{3f2504e0-4f89-11d3-9a0c-0305e82c3301}", false, ""},
		{"3f2504e04f8911d39a0c0305e82c3301", false, ""},
		{"EAS0000000000000001", false, ""},
		{"eas0000000000000001", false, ""},
		{"d1", false, ""},
		{"", false, ""},
	}
	seen := map[devKey]string{}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			k, guid := kr.key(tt.id)
			assert.Equal(t, tt.guid, guid)
			if guid {
				assert.Equal(t, strings.ToLower(tt.id), guidText(k))
			}
			if tt.same != "" {
				k2, _ := kr.key(tt.same)
				assert.Equal(t, k, k2)
			}
			again, _ := kr.key(tt.id)
			assert.Equal(t, k, again)
			_, dup := seen[k]
			assert.False(t, dup, "different ids have different keys")
			seen[k] = tt.id
		})
	}
}

func TestNonGUIDTextsAreFreed(t *testing.T) {
	c := New(Options{Size: 2, Vendors: []string{"a"}})
	c.Apply("a", []Report{rep("d1", policy.LevelLow), rep("d2", policy.LevelLow), rep("3f2504e0-4f89-11d3-9a0c-0305e82c3301", policy.LevelLow)})
	s := c.store("a")
	assert.Len(t, s.devText, 1, "d1 was evicted and the GUID needs no text")
	c.Apply("a", []Report{{DeviceID: "d2", Deleted: true}})
	assert.Empty(t, s.devText)
}

func TestGUIDsMatchInAnyCase(t *testing.T) {
	clk := newClock()
	c := New(Options{Now: clk.Now, Vendors: []string{"graph"}})
	c.MarkSynced("graph", clk.Now())
	r := rep("3F2504E0-4F89-11D3-9A0C-0305E82C3301", policy.LevelHigh)
	r.AltIDs = []string{"6B29FC40-CA47-1067-B31D-00DD010662DA"}
	c.Apply("graph", []Report{r})
	for _, id := range []string{
		"3f2504e0-4f89-11d3-9a0c-0305e82c3301", "3F2504E0-4F89-11D3-9A0C-0305E82C3301",
		"6b29fc40-ca47-1067-b31d-00dd010662da",
	} {
		assert.Equal(t, policy.LevelHigh, c.Lookup(id).Level, id)
	}
	c.Apply("graph", []Report{rep("3f2504e0-4f89-11d3-9a0c-0305e82c3301", policy.LevelLow)})
	assert.Equal(t, 1, c.Len("graph"))
	assert.Equal(t, policy.LevelLow, c.Lookup("6B29FC40-CA47-1067-B31D-00DD010662DA").Level)

	// The state file keeps the ids' text, in lower case.
	path := filepath.Join(t.TempDir(), "risk.json")
	require.NoError(t, SaveState(path, c))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"3f2504e0-4f89-11d3-9a0c-0305e82c3301"`)
	assert.Contains(t, string(data), `"6b29fc40-ca47-1067-b31d-00dd010662da"`)
	dst := New(Options{Now: clk.Now, Vendors: []string{"graph"}})
	require.NoError(t, LoadState(path, dst))
	assert.Equal(t, c.Lookup("6B29FC40-CA47-1067-B31D-00DD010662DA"), dst.Lookup("6b29fc40-ca47-1067-b31d-00dd010662da"))
}

func TestStateKeepsIDsText(t *testing.T) {
	clk := newClock()
	c := New(Options{Now: clk.Now, Vendors: []string{"a"}})
	mixed := rep("Device-One", policy.LevelHigh)
	mixed.AltIDs = []string{"3F2504E0-4F89-11D3-9A0C-0305E82C3301", "EAS-One"}
	guid := rep("6B29FC40-CA47-1067-B31D-00DD010662DA", policy.LevelLow)
	guid.AltIDs = []string{"EAS-Two"}
	gone := rep("gone", policy.LevelLow)
	gone.AltIDs = []string{"eas-gone"}
	c.Apply("a", []Report{mixed, guid, gone, {DeviceID: "gone", Deleted: true}})
	path := filepath.Join(t.TempDir(), "risk.json")
	require.NoError(t, SaveState(path, c))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, id := range []string{`"Device-One"`, `"3f2504e0-4f89-11d3-9a0c-0305e82c3301"`, `"EAS-One"`,
		`"6b29fc40-ca47-1067-b31d-00dd010662da"`, `"EAS-Two"`} {
		assert.Contains(t, string(data), id)
	}
	assert.NotContains(t, string(data), "gone", "an alternative id of a removed device is not saved")
	dst := New(Options{Now: clk.Now, Vendors: []string{"a"}})
	require.NoError(t, LoadState(path, dst))
	for _, id := range []string{"Device-One", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "EAS-One", "6b29fc40-ca47-1067-b31d-00dd010662da", "EAS-Two", "eas-gone"} {
		assert.Equal(t, c.Lookup(id), dst.Lookup(id), id)
	}
}

func TestTimestampsOutOfRange(t *testing.T) {
	clk := newClock()
	c := New(Options{Now: clk.Now, Vendors: []string{"a"}})
	old := rep("old", policy.LevelLow)
	old.UpdatedAt = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	late := rep("late", policy.LevelLow)
	late.UpdatedAt = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	unknown := rep("unknown", policy.LevelLow)
	unknown.UpdatedAt = time.Time{}
	c.Apply("a", []Report{old, late, unknown})
	assert.Equal(t, time.Unix(1, 0).UTC(), c.Lookup("old").UpdatedAt)
	assert.Equal(t, time.Unix(math.MaxUint32, 0).UTC(), c.Lookup("late").UpdatedAt)
	assert.True(t, c.Lookup("unknown").UpdatedAt.IsZero())
	assert.Equal(t, clk.Now(), c.Lookup("unknown").Since)
}

func TestApplyAndSweepBatchesKeepLookupsGoing(t *testing.T) {
	// More reports than one batch: every one is applied, and a full sync
	// sweeps more devices than one batch.
	c := New(Options{Size: 5000, Vendors: []string{"a"}})
	rs := make([]Report, 3000)
	for i := range rs {
		rs[i] = rep(fmt.Sprintf("d%d", i), policy.LevelLow)
		rs[i].AltIDs = []string{fmt.Sprintf("e%d", i)}
	}
	assert.Equal(t, 3000, c.Apply("a", rs))
	gen := c.BeginSync("a")
	assert.Equal(t, 1, c.Apply("a", rs[:1]))
	assert.Equal(t, 2999, c.Sweep("a", gen))
	assert.Equal(t, 1, c.Len("a"))
	assert.Equal(t, 1, c.store("a").aliases.Len())
	assert.Equal(t, [5]int{policy.LevelLow: 1}, c.Counts("a"))
}

// refPackGUID is a plain, digit-by-digit GUID parser to check packGUID by.
func refPackGUID(s string) (devKey, bool) {
	var k devKey
	if len(s) != guidTextLen || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return k, false
	}
	hex := strings.ReplaceAll(s, "-", "")
	if len(hex) != 32 {
		return k, false
	}
	for i := range 16 {
		var v byte
		for _, c := range []byte(hex[2*i : 2*i+2]) {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | (c - '0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | (c - 'a' + 10)
			case c >= 'A' && c <= 'F':
				v = v<<4 | (c - 'A' + 10)
			default:
				return k, false
			}
		}
		k[i] = v
	}
	return k, true
}

func TestPackGUIDEveryByteAtEveryPosition(t *testing.T) {
	base := "0123abcd-4567-89ef-ABCD-0a1B2c3D4e5F"
	for pos := range guidTextLen {
		for c := range 256 {
			b := []byte(base)
			b[pos] = byte(c)
			s := string(b)
			want, wantOK := refPackGUID(s)
			var got devKey
			ok := packGUID(&got, s)
			require.Equal(t, wantOK, ok, "%q", s)
			if ok {
				require.Equal(t, want, got, "%q", s)
			}
		}
	}
}

// TestDevTableMatchesModel drives the device table with random writes and
// removals and checks it against a plain map and write-order list.
func TestDevTableMatchesModel(t *testing.T) {
	for _, capacity := range []int{1, 5, 100, 1000} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(capacity)))
			var removed []devKey
			tab := newDevTable(capacity, maphash.MakeSeed(), func(d *devSlot) { removed = append(removed, d.key) })
			model := map[devKey]uint32{}
			var order []devKey // least recently written first
			drop := func(k devKey) {
				delete(model, k)
				for i, o := range order {
					if o == k {
						order = append(order[:i], order[i+1:]...)
						break
					}
				}
			}
			key := func() devKey {
				var k devKey
				k[3] = byte(rng.IntN(2 * capacity))
				k[9] = byte(rng.IntN(2))
				return k
			}
			for step := range 20000 {
				k := key()
				switch rng.IntN(4) {
				case 0:
					removed = removed[:0]
					_, want := model[k]
					require.Equal(t, want, tab.remove(k))
					if want {
						require.Equal(t, []devKey{k}, removed)
					}
					drop(k)
				case 1:
					if len(order) > 0 {
						require.Equal(t, order[0], tab.oldest().key)
						tab.removeOldest()
						drop(order[0])
					} else {
						require.Nil(t, tab.oldest())
					}
				default:
					removed = removed[:0]
					d, existed := tab.put(k)
					_, want := model[k]
					require.Equal(t, want, existed)
					if !existed && len(order) == capacity {
						require.Equal(t, []devKey{order[0]}, removed, "the least recently written is evicted")
						drop(order[0])
					}
					if existed {
						require.Equal(t, model[k], d.rec.gen)
					}
					drop(k)
					d.rec.gen = uint32(step)
					model[k] = uint32(step)
					order = append(order, k)
				}
				require.Equal(t, len(model), tab.Len())
				for mk, gen := range model {
					d := tab.get(mk)
					require.NotNil(t, d)
					require.Equal(t, gen, d.rec.gen)
				}
				if step%97 == 0 {
					keys := tab.keys()
					if len(order) == 0 {
						require.Empty(t, keys)
					} else {
						require.Equal(t, order, keys)
					}
				}
			}
		})
	}
}
