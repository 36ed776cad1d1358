package vendorsim

import (
	"net/http"
	"strings"
	"time"

	"github.com/riskgate/riskgate/policy"
)

// Paths the Lookout simulator serves.
const (
	LookoutTokenPath   = "/oauth2/token"
	LookoutDevicesPath = "/mra/api/v2/devices"
)

// Lookout simulates Lookout's Mobile Risk API v2: POST /oauth2/token with
// the application key as bearer and grant_type=client_credentials, and
// GET /mra/api/v2/devices?limit=N[&oid=O] listing devices after oid O.
type Lookout struct {
	core
	appKey string
}

// NewLookout returns a Lookout simulator accepting one application key.
func NewLookout(store *Store, appKey string) *Lookout {
	return &Lookout{core: newCore(store), appKey: appKey}
}

const lookoutMaxLimit = 1000

// ServeHTTP routes the token endpoint and the device list.
func (l *Lookout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == LookoutTokenPath && r.Method == http.MethodPost:
		l.token(w, r)
	case r.URL.Path == LookoutDevicesPath && r.Method == http.MethodGet:
		l.devices(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (l *Lookout) token(w http.ResponseWriter, r *http.Request) {
	if !l.tokenRequest(w) {
		return
	}
	key, ok := bearer(r)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if !ok || key != l.appKey {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": l.issue(), "token_type": "bearer", "expires_in": 3600,
	})
}

type lookoutDevice struct {
	GUID             string `json:"guid"`
	OID              uint64 `json:"oid"`
	Email            string `json:"email,omitempty"`
	Platform         string `json:"platform,omitempty"`
	ActivationStatus string `json:"activation_status"`
	SecurityStatus   string `json:"security_status,omitempty"`
	ProtectionStatus string `json:"protection_status"`
	UpdatedTime      string `json:"updated_time"`
	Details          struct {
		ExternalID string `json:"external_id,omitempty"`
	} `json:"details"`
	Software struct {
		OSVersion string `json:"os_version,omitempty"`
	} `json:"software"`
}

func (l *Lookout) devices(w http.ResponseWriter, r *http.Request) {
	if !l.apiRequest(w, r) {
		return
	}
	limit, ok1 := intParam(r, "limit", lookoutMaxLimit, lookoutMaxLimit)
	oid, ok2 := intParam(r, "oid", 0, 0)
	if !ok1 || !ok2 || limit == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad limit or oid"})
		return
	}
	snaps, _, _ := l.store.after(uint64(oid), limit)
	body := struct {
		Count   int             `json:"count"`
		Devices []lookoutDevice `json:"devices"`
	}{Count: l.store.Len(), Devices: make([]lookoutDevice, 0, len(snaps))}
	for _, s := range snaps {
		d := lookoutDevice{
			GUID:             s.ID,
			OID:              s.oid,
			Email:            s.User,
			Platform:         strings.ToUpper(s.Platform),
			ActivationStatus: "ACTIVATED",
			SecurityStatus:   s.Raw,
			ProtectionStatus: "PROTECTED",
			UpdatedTime:      s.UpdatedAt.UTC().Format(time.RFC3339),
		}
		if d.SecurityStatus == "" {
			d.SecurityStatus = LookoutStatus(s.Level)
		}
		if s.Inactive {
			d.ActivationStatus = "DEACTIVATED"
		}
		d.Details.ExternalID = s.MDMID
		d.Software.OSVersion = s.OSVersion
		body.Devices = append(body.Devices, d)
	}
	writeJSON(w, http.StatusOK, body)
}

// LookoutStatus is Lookout's security_status for a level ("" for unknown).
func LookoutStatus(l policy.Level) string {
	switch l {
	case policy.LevelSecured:
		return "SECURE"
	case policy.LevelLow:
		return "THREATS_LOW"
	case policy.LevelMedium:
		return "THREATS_MEDIUM"
	case policy.LevelHigh:
		return "THREATS_HIGH"
	}
	return ""
}
