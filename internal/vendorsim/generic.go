package vendorsim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Generic serves DESIGN.md's generic vendor pull API on any path:
// GET ?cursor=C&limit=N with "Authorization: Bearer {token}".
//
// Cursors: an empty cursor pages through every device ("f.SEQ.OID" continues
// it); the last page's next_cursor is "d.SEQ", which asks for the devices
// changed after change number SEQ, deleted ones included as
// {"device_id": ..., "deleted": true}. A device changed during a full sync
// is sent again by the next delta.
type Generic struct {
	core
	token string
}

// NewGeneric returns a generic API simulator over store. An empty token
// accepts any request.
func NewGeneric(store *Store, token string) *Generic {
	return &Generic{core: newCore(store), token: token}
}

const (
	genericDefaultLimit = 100
	genericMaxLimit     = 1000
)

type genericDevice struct {
	DeviceID  string `json:"device_id"`
	Risk      string `json:"risk,omitempty"`
	User      string `json:"user,omitempty"`
	Platform  string `json:"platform,omitempty"`
	OSVersion string `json:"os_version,omitempty"`
	UpdatedAt string `json:"updated_at,omitempty"`
	Deleted   bool   `json:"deleted,omitempty"`
}

type genericPage struct {
	Devices    []genericDevice `json:"devices"`
	NextCursor string          `json:"next_cursor"`
	HasMore    bool            `json:"has_more"`
}

// ServeHTTP answers the device list.
func (g *Generic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	g.apiRequests.Add(1)
	if g.token != "" {
		if t, ok := bearer(r); !ok || t != g.token {
			unauthorized(w)
			return
		}
	}
	if g.fault(w, false) {
		return
	}
	limit, ok := intParam(r, "limit", genericDefaultLimit, genericMaxLimit)
	if !ok || limit == 0 {
		http.Error(w, "bad limit", http.StatusBadRequest)
		return
	}
	page, err := g.page(r.URL.Query().Get("cursor"), limit)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (g *Generic) page(cursor string, limit int) (genericPage, error) {
	parts := strings.Split(cursor, ".")
	switch {
	case cursor == "":
		return g.full(0, 0, limit, true), nil
	case parts[0] == "f" && len(parts) == 3:
		seq, err1 := strconv.ParseUint(parts[1], 10, 64)
		oid, err2 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil {
			break
		}
		return g.full(seq, oid, limit, false), nil
	case parts[0] == "d" && len(parts) == 2:
		seq, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil {
			break
		}
		snaps, more := g.store.changedSince(seq, limit)
		p := genericPage{Devices: make([]genericDevice, 0, len(snaps)), HasMore: more}
		for _, s := range snaps {
			p.Devices = append(p.Devices, genericJSON(s))
			seq = s.seq
		}
		p.NextCursor = fmt.Sprintf("d.%d", seq)
		return p, nil
	}
	return genericPage{}, fmt.Errorf("bad cursor %q", cursor)
}

// full pages through live devices; start begins a sync at the current
// change number, which the last page hands on as the delta cursor.
func (g *Generic) full(seq, oid uint64, limit int, start bool) genericPage {
	snaps, more, cur := g.store.after(oid, limit)
	if start {
		seq = cur
	}
	p := genericPage{Devices: make([]genericDevice, 0, len(snaps)), HasMore: more}
	for _, s := range snaps {
		p.Devices = append(p.Devices, genericJSON(s))
	}
	if more {
		p.NextCursor = fmt.Sprintf("f.%d.%d", seq, lastOID(snaps))
	} else {
		p.NextCursor = fmt.Sprintf("d.%d", seq)
	}
	return p
}

func genericJSON(s snapshot) genericDevice {
	if s.deleted {
		return genericDevice{DeviceID: s.ID, Deleted: true}
	}
	risk := s.Raw
	if risk == "" {
		risk = s.Level.String()
	}
	return genericDevice{
		DeviceID:  s.ID,
		Risk:      risk,
		User:      s.User,
		Platform:  s.Platform,
		OSVersion: s.OSVersion,
		UpdatedAt: s.UpdatedAt.UTC().Format(time.RFC3339),
	}
}
