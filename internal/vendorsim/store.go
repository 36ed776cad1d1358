// Package vendorsim simulates MTD vendors' device APIs for tests and for
// `riskgate demo`: a shared in-memory Store of devices, and one
// http.Handler per vendor speaking that vendor's format (generic, Microsoft
// Graph, Lookout, Zimperium, Check Point) with its token endpoint, paging,
// auth checks and fault injection. Use them with httptest.NewServer.
package vendorsim

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/riskgate/riskgate/policy"
)

// Device is one simulated device as the vendor knows it.
type Device struct {
	// ID is the vendor's own id: Graph's id, Lookout's guid, Zimperium's
	// and Check Point's id, the generic API's device_id.
	ID string
	// MDMID is the Entra (Azure AD) device id as the vendor reports it:
	// Graph azureADDeviceId, Lookout details.external_id, Zimperium mdmId,
	// Check Point mdm_device_id. Empty: not reported (Graph sends the
	// all-zero GUID).
	MDMID string
	// EASDeviceID is Graph's easDeviceId.
	EASDeviceID string
	User        string
	// Platform in riskgate's terms: ios, android, windows, macos.
	Platform  string
	OSVersion string
	// Level is the vendor's verdict, sent in the vendor's vocabulary.
	Level policy.Level
	// Raw, when set, is sent verbatim as the vendor's risk value instead of
	// Level's (to test values a client must not recognise). Check Point
	// sends it as a JSON number when it is one.
	Raw string
	// Inactive marks a device the vendor no longer protects: Lookout
	// DEACTIVATED, Check Point status 4.
	Inactive bool
	// UpdatedAt defaults to the store's clock at Set.
	UpdatedAt time.Time
}

// Store is the simulated vendor's device data, shared by the handlers. It is
// safe for concurrent use.
type Store struct {
	now func() time.Time

	mu    sync.Mutex
	byID  map[string]*entry
	order []*entry // creation order, by oid
	oid   uint64
	seq   uint64
}

type entry struct {
	dev     Device
	oid     uint64 // creation order, for keyset paging
	seq     uint64 // last change, for deltas
	deleted bool
}

// NewStore returns an empty store; now stamps devices set without
// UpdatedAt (nil means time.Now).
func NewStore(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{now: now, byID: make(map[string]*entry)}
}

// Set adds or replaces the device with d.ID.
func (s *Store) Set(d Device) {
	if d.UpdatedAt.IsZero() {
		d.UpdatedAt = s.now().UTC().Truncate(time.Second)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	e := s.byID[d.ID]
	if e == nil || e.deleted {
		if e != nil {
			s.removeFromOrder(e)
		}
		s.oid++
		e = &entry{oid: s.oid}
		s.byID[d.ID] = e
		s.order = append(s.order, e)
	}
	e.dev, e.seq, e.deleted = d, s.seq, false
}

// SetLevel changes a device's level (clearing Raw) and stamps it now. It
// reports whether the device exists.
func (s *Store) SetLevel(id string, l policy.Level) bool {
	s.mu.Lock()
	e := s.byID[id]
	if e == nil || e.deleted {
		s.mu.Unlock()
		return false
	}
	d := e.dev
	s.mu.Unlock()
	d.Level, d.Raw, d.UpdatedAt = l, "", time.Time{}
	s.Set(d)
	return true
}

// Delete removes a device; the generic API reports it deleted in the next
// delta. It reports whether the device existed.
func (s *Store) Delete(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byID[id]
	if e == nil || e.deleted {
		return false
	}
	s.seq++
	e.seq, e.deleted = s.seq, true
	return true
}

// Get returns the device with id.
func (s *Store) Get(id string) (Device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byID[id]
	if e == nil || e.deleted {
		return Device{}, false
	}
	return e.dev, true
}

// Devices returns the devices in the order they were first set.
func (s *Store) Devices() []Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Device, 0, len(s.order))
	for _, e := range s.order {
		if !e.deleted {
			out = append(out, e.dev)
		}
	}
	return out
}

// Len is the number of devices.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.order {
		if !e.deleted {
			n++
		}
	}
	return n
}

func (s *Store) removeFromOrder(e *entry) {
	i := sort.Search(len(s.order), func(i int) bool { return s.order[i].oid >= e.oid })
	if i < len(s.order) && s.order[i] == e {
		s.order = slices.Delete(s.order, i, i+1)
	}
}

// snapshot is a copy of an entry handed to a handler.
type snapshot struct {
	Device
	oid     uint64
	seq     uint64
	deleted bool
}

// after returns up to n live devices created after oid, whether more
// follow, and the store's change sequence number.
func (s *Store) after(oid uint64, n int) ([]snapshot, bool, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.order), func(i int) bool { return s.order[i].oid > oid })
	var out []snapshot
	for ; i < len(s.order); i++ {
		e := s.order[i]
		if e.deleted {
			continue
		}
		if len(out) == n {
			return out, true, s.seq
		}
		out = append(out, snapshot{Device: e.dev, oid: e.oid, seq: e.seq})
	}
	return out, false, s.seq
}

// offset returns up to n live devices from offset in creation order and the
// total.
func (s *Store) offset(off, n int) ([]snapshot, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []snapshot
	total := 0
	for _, e := range s.order {
		if e.deleted {
			continue
		}
		if total >= off && len(out) < n {
			out = append(out, snapshot{Device: e.dev, oid: e.oid, seq: e.seq})
		}
		total++
	}
	return out, total
}

// changedSince returns up to n devices (deleted ones included) changed
// after seq, in change order, and whether more follow.
func (s *Store) changedSince(seq uint64, n int) ([]snapshot, bool) {
	s.mu.Lock()
	var out []snapshot
	for _, e := range s.byID {
		if e.seq > seq {
			out = append(out, snapshot{Device: e.dev, oid: e.oid, seq: e.seq, deleted: e.deleted})
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	if len(out) > n {
		return out[:n], true
	}
	return out, false
}
