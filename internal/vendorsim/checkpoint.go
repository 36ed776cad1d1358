package vendorsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Paths the Check Point simulator serves.
const (
	CheckPointTokenPath   = "/auth/external"
	CheckPointDevicesPath = "/app/SBM/external_api/v1/device_status/"
)

// CheckPoint simulates Check Point Harmony Mobile behind the Infinity
// Portal: POST /auth/external with {"clientId", "accessKey"}, and
// GET /app/SBM/external_api/v1/device_status/?limit=N&offset=M answering
// {"meta": {...}, "objects": [...]}.
type CheckPoint struct {
	core
	clientID, accessKey string
}

// NewCheckPoint returns a Check Point simulator accepting one API key.
func NewCheckPoint(store *Store, clientID, accessKey string) *CheckPoint {
	return &CheckPoint{core: newCore(store), clientID: clientID, accessKey: accessKey}
}

const checkPointMaxLimit = 1000

// ServeHTTP routes the authentication and the device list.
func (c *CheckPoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == CheckPointTokenPath && r.Method == http.MethodPost:
		c.auth(w, r)
	case r.URL.Path == CheckPointDevicesPath && r.Method == http.MethodGet:
		c.devices(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (c *CheckPoint) auth(w http.ResponseWriter, r *http.Request) {
	if !c.tokenRequest(w) {
		return
	}
	var req struct {
		ClientID  string `json:"clientId"`
		AccessKey string `json:"accessKey"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "message": "bad request"})
		return
	}
	if req.ClientID != c.clientID || req.AccessKey != c.accessKey {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"success": false, "message": "Authentication failed"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true,
		"data":    map[string]any{"token": c.issue(), "expiresIn": 1800},
	})
}

type checkPointDevice struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Email       string          `json:"email,omitempty"`
	Risk        json.RawMessage `json:"risk,omitempty"`
	Status      int             `json:"status"`
	OSType      string          `json:"os_type,omitempty"`
	OSVersion   string          `json:"os_version,omitempty"`
	MDMDeviceID string          `json:"mdm_device_id,omitempty"`
	LastSeen    string          `json:"last_seen"`
}

func (c *CheckPoint) devices(w http.ResponseWriter, r *http.Request) {
	if !c.apiRequest(w, r) {
		return
	}
	limit, ok1 := intParam(r, "limit", 20, checkPointMaxLimit)
	offset, ok2 := intParam(r, "offset", 0, 0)
	if !ok1 || !ok2 || limit == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad limit or offset"})
		return
	}
	snaps, total := c.store.offset(offset, limit)
	var next *string
	if offset+len(snaps) < total {
		n := fmt.Sprintf("%s?limit=%d&offset=%d", CheckPointDevicesPath, limit, offset+len(snaps))
		next = &n
	}
	body := struct {
		Meta    map[string]any     `json:"meta"`
		Objects []checkPointDevice `json:"objects"`
	}{
		Meta:    map[string]any{"limit": limit, "offset": offset, "next": next, "previous": nil, "total_count": total},
		Objects: make([]checkPointDevice, 0, len(snaps)),
	}
	for _, s := range snaps {
		d := checkPointDevice{
			ID:          s.ID,
			Name:        "sim-" + s.ID,
			Email:       s.User,
			Status:      1,
			OSType:      s.Platform,
			OSVersion:   s.OSVersion,
			MDMDeviceID: s.MDMID,
			LastSeen:    s.UpdatedAt.UTC().Format(time.RFC3339),
		}
		if s.Inactive {
			d.Status = 4
		}
		switch {
		case s.Raw != "":
			if _, err := strconv.ParseFloat(s.Raw, 64); err == nil {
				d.Risk = json.RawMessage(s.Raw)
			} else {
				d.Risk, _ = json.Marshal(s.Raw)
			}
		case s.Level > 0:
			d.Risk = json.RawMessage(strconv.Itoa(int(s.Level) - 1))
		}
		body.Objects = append(body.Objects, d)
	}
	writeJSON(w, http.StatusOK, body)
}
