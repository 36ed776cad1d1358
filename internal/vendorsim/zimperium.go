package vendorsim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/riskgate/riskgate/policy"
)

// Paths the Zimperium simulator serves.
const (
	ZimperiumTokenPath       = "/auth/v1/api_keys/login"
	ZimperiumStartScrollPath = "/devices/public/v2/devices/start-scroll"
	ZimperiumNextScrollPath  = "/devices/public/v2/devices/next-scroll"
)

// Zimperium simulates the zConsole public API: POST
// /auth/v1/api_keys/login with {"clientId", "secret"}, and a device scroll
// (GET .../start-scroll?size=N, then .../next-scroll?scrollId=S&size=N).
type Zimperium struct {
	core
	clientID, secret string
}

// NewZimperium returns a Zimperium simulator accepting one API key.
func NewZimperium(store *Store, clientID, secret string) *Zimperium {
	return &Zimperium{core: newCore(store), clientID: clientID, secret: secret}
}

const zimperiumMaxSize = 1000

// ServeHTTP routes the login and the device scroll.
func (z *Zimperium) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == ZimperiumTokenPath && r.Method == http.MethodPost:
		z.login(w, r)
	case (r.URL.Path == ZimperiumStartScrollPath || r.URL.Path == ZimperiumNextScrollPath) && r.Method == http.MethodGet:
		z.devices(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (z *Zimperium) login(w http.ResponseWriter, r *http.Request) {
	if !z.tokenRequest(w) {
		return
	}
	var req struct {
		ClientID string `json:"clientId"`
		Secret   string `json:"secret"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "bad request"})
		return
	}
	if req.ClientID != z.clientID || req.Secret != z.secret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Invalid credentials"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"accessToken":           z.issue(),
		"refreshToken":          "sim-refresh",
		"accessTokenExpiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	})
}

type zimperiumDevice struct {
	ID              string `json:"id"`
	MDMID           string `json:"mdmId,omitempty"`
	RiskPosture     int    `json:"riskPosture"`
	RiskPostureName string `json:"riskPostureName,omitempty"`
	LastSeen        int64  `json:"lastSeen"`
	ActivationName  string `json:"activationName,omitempty"`
	Deleted         bool   `json:"deleted"`
	DeviceOwner     struct {
		Email string `json:"email,omitempty"`
	} `json:"deviceOwner"`
	OS struct {
		Name    string `json:"name,omitempty"`
		Version string `json:"version,omitempty"`
	} `json:"os"`
}

func (z *Zimperium) devices(w http.ResponseWriter, r *http.Request) {
	if !z.apiRequest(w, r) {
		return
	}
	size, ok := intParam(r, "size", 50, zimperiumMaxSize)
	if !ok || size == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "bad size"})
		return
	}
	var after uint64
	if r.URL.Path == ZimperiumNextScrollPath {
		s, found := strings.CutPrefix(r.URL.Query().Get("scrollId"), "scroll-")
		n, err := strconv.ParseUint(s, 10, 64)
		if !found || err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "bad scrollId"})
			return
		}
		after = n
	}
	snaps, _, _ := z.store.after(after, size)
	body := struct {
		TotalHits int               `json:"totalHits"`
		ScrollID  string            `json:"scrollId"`
		Content   []zimperiumDevice `json:"content"`
	}{
		TotalHits: z.store.Len(),
		ScrollID:  "scroll-" + strconv.FormatUint(lastOID(snaps), 10),
		Content:   make([]zimperiumDevice, 0, len(snaps)),
	}
	if len(snaps) == 0 {
		body.ScrollID = "scroll-" + strconv.FormatUint(after, 10)
	}
	for _, s := range snaps {
		d := zimperiumDevice{
			ID:              s.ID,
			MDMID:           s.MDMID,
			RiskPosture:     int(s.Level) - 1,
			RiskPostureName: s.Raw,
			LastSeen:        s.UpdatedAt.UnixMilli(),
			ActivationName:  s.User,
		}
		if d.RiskPostureName == "" {
			d.RiskPostureName = ZimperiumPosture(s.Level)
		}
		d.DeviceOwner.Email = s.User
		d.OS.Name = s.Platform
		d.OS.Version = s.OSVersion
		body.Content = append(body.Content, d)
	}
	writeJSON(w, http.StatusOK, body)
}

// ZimperiumPosture is Zimperium's riskPostureName for a level ("" for
// unknown).
func ZimperiumPosture(l policy.Level) string {
	switch l {
	case policy.LevelSecured:
		return "NORMAL"
	case policy.LevelLow:
		return "LOW"
	case policy.LevelMedium:
		return "ELEVATED"
	case policy.LevelHigh:
		return "CRITICAL"
	}
	return ""
}
