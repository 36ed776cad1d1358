package vendorsim

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/riskgate/riskgate/policy"
)

// Paths the Graph simulator serves.
const (
	GraphTokenPath          = "/oauth2/v2.0/token"
	GraphManagedDevicesPath = "/v1.0/deviceManagement/managedDevices"
)

// Graph simulates Microsoft Graph's Intune managed devices and the Entra
// token endpoint: POST /oauth2/v2.0/token (client-credentials grant, client
// secret in the form or in Basic auth) and
// GET /v1.0/deviceManagement/managedDevices?$top=N[&$skiptoken=T] with
// @odata.nextLink paging.
type Graph struct {
	core
	clientID, clientSecret string
}

// NewGraph returns a Graph simulator accepting one client's credentials.
func NewGraph(store *Store, clientID, clientSecret string) *Graph {
	return &Graph{core: newCore(store), clientID: clientID, clientSecret: clientSecret}
}

const (
	graphDefaultTop = 100
	graphMaxTop     = 1000
)

// ServeHTTP routes the token endpoint and the device list.
func (g *Graph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == GraphTokenPath && r.Method == http.MethodPost:
		g.token(w, r)
	case r.URL.Path == GraphManagedDevicesPath && r.Method == http.MethodGet:
		g.devices(w, r)
	default:
		writeJSON(w, http.StatusNotFound, graphError("ResourceNotFound", "no such resource"))
	}
}

func (g *Graph) token(w http.ResponseWriter, r *http.Request) {
	g.tokenRequests.Add(1)
	if g.fault(w, true) {
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	id, sec, ok := r.BasicAuth()
	if !ok {
		id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	if id != g.clientID || sec != g.clientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.",
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": 3599, "access_token": g.issue(),
	})
}

type graphDevice struct {
	ID                         string `json:"id"`
	DeviceName                 string `json:"deviceName"`
	AzureADDeviceID            string `json:"azureADDeviceId"`
	EASDeviceID                string `json:"easDeviceId"`
	UserPrincipalName          string `json:"userPrincipalName"`
	OperatingSystem            string `json:"operatingSystem"`
	OSVersion                  string `json:"osVersion"`
	PartnerReportedThreatState string `json:"partnerReportedThreatState"`
	LastSyncDateTime           string `json:"lastSyncDateTime"`
}

func (g *Graph) devices(w http.ResponseWriter, r *http.Request) {
	g.apiRequests.Add(1)
	if !g.authorized(r) {
		writeJSON(w, http.StatusUnauthorized, graphError("InvalidAuthenticationToken", "Access token is empty or invalid."))
		return
	}
	if g.fault(w, false) {
		return
	}
	q := r.URL.Query()
	top, ok := intParam(r, "$top", graphDefaultTop, graphMaxTop)
	if !ok || top == 0 {
		writeJSON(w, http.StatusBadRequest, graphError("BadRequest", "invalid $top"))
		return
	}
	var after uint64
	if s := q.Get("$skiptoken"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, graphError("BadRequest", "invalid $skiptoken"))
			return
		}
		after = n
	}
	snaps, more, _ := g.store.after(after, top)
	body := struct {
		Context  string        `json:"@odata.context"`
		Value    []graphDevice `json:"value"`
		NextLink string        `json:"@odata.nextLink,omitempty"`
	}{
		Context: "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/managedDevices",
		Value:   make([]graphDevice, 0, len(snaps)),
	}
	for _, s := range snaps {
		body.Value = append(body.Value, graphJSON(s))
	}
	if more {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("$skiptoken", strconv.FormatUint(lastOID(snaps), 10))
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		body.NextLink = scheme + "://" + r.Host + GraphManagedDevicesPath + "?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, body)
}

func graphJSON(s snapshot) graphDevice {
	aad := s.MDMID
	if aad == "" {
		aad = "00000000-0000-0000-0000-000000000000"
	}
	state := s.Raw
	if state == "" {
		state = GraphState(s.Level)
	}
	return graphDevice{
		ID:                         s.ID,
		DeviceName:                 "sim-" + s.ID,
		AzureADDeviceID:            aad,
		EASDeviceID:                s.EASDeviceID,
		UserPrincipalName:          s.User,
		OperatingSystem:            graphOS(s.Platform),
		OSVersion:                  s.OSVersion,
		PartnerReportedThreatState: state,
		LastSyncDateTime:           s.UpdatedAt.UTC().Format(time.RFC3339),
	}
}

// GraphState is the partnerReportedThreatState Intune shows for a level.
func GraphState(l policy.Level) string {
	switch l {
	case policy.LevelSecured:
		return "secured"
	case policy.LevelLow:
		return "lowSeverity"
	case policy.LevelMedium:
		return "mediumSeverity"
	case policy.LevelHigh:
		return "highSeverity"
	}
	return "unknown"
}

func graphOS(platform string) string {
	switch platform {
	case "ios":
		return "iOS"
	case "android":
		return "Android"
	case "windows":
		return "Windows"
	case "macos":
		return "macOS"
	}
	return platform
}

func graphError(code, msg string) map[string]any {
	return map[string]any{"error": map[string]string{"code": code, "message": msg}}
}
