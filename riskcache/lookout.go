package riskcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/riskgate/riskgate/policy"
)

const (
	// LookoutDefaultURL is the Lookout Mobile Risk API's base, used when
	// policy.Vendor.URL is empty for type lookout.
	LookoutDefaultURL = "https://api.lookout.com"
	// LookoutTokenPath is appended to the URL when TokenURL is empty.
	LookoutTokenPath = "/oauth2/token"
	// LookoutDevicesPath is appended to the URL.
	LookoutDevicesPath = "/mra/api/v2/devices"

	lookoutMaxPageSize = 1000
	// lookoutTokenLifetime is assumed when the token response states none.
	lookoutTokenLifetime = 10 * time.Minute
)

// Lookout polls Lookout's Mobile Risk API v2.
//
// What the client assumes of the API (Lookout's public "Mobile Risk API v2"
// documentation and its published clients):
//   - An application key, generated in the Lookout console (System >
//     Application Keys), is exchanged for an access token:
//     POST {url}/oauth2/token with "Authorization: Bearer {key}" and the form
//     grant_type=client_credentials, answering {"access_token",
//     "expires_in" (seconds) or "expires_at" (Unix milliseconds)}.
//   - GET {url}/mra/api/v2/devices?limit=N[&oid=O] lists devices in
//     ascending "oid" order, at most 1000 a page; oid=O asks for the devices
//     after O. The answer is {"count": total, "devices": [...]}; a page
//     shorter than the limit is the last.
//   - A device has "guid", "oid", "email", "platform" (ANDROID, IOS),
//     "activation_status" (ACTIVATED, PENDING, DEACTIVATED),
//     "security_status" (SECURE, THREATS_LOW, THREATS_MEDIUM, THREATS_HIGH),
//     "customer_device_id", "details": {"external_id": the MDM's device id},
//     "software": {"os_version"} and "updated_time".
//
// Every sync is a full sync (NextCursor is empty after the last page).
//
// Device id: Lookout does not expose the Entra device id. A device is
// reported under its MDM id (details.external_id, the id Lookout's MDM
// connector holds) when set, else under its Lookout guid; the guid and
// customer_device_id are alternative ids. A device that is not ACTIVATED is
// reported with LevelUnknown whatever its last security status.
type Lookout struct {
	http    vendorHTTP
	devices string
	limit   int
}

// NewLookout returns a Lookout client. v.APIKey (or APIKeyFile) is the
// application key; v.URL defaults to LookoutDefaultURL and v.TokenURL to
// {url}/oauth2/token.
func NewLookout(v policy.Vendor, client *http.Client) (*Lookout, error) {
	if v.APIKey == "" && v.APIKeyFile == "" {
		return nil, errors.New("lookout needs api_key (the application key)")
	}
	base, tokenURL := vendorURLs(v, LookoutDefaultURL, LookoutTokenPath)
	l := &Lookout{
		devices: joinURL(base, LookoutDevicesPath),
		limit:   pageSize(v, lookoutMaxPageSize),
	}
	l.http = newLoginHTTP(v, client, v.APIKey, v.APIKeyFile, func(ctx context.Context, h *vendorHTTP, key string) (*oauth2.Token, error) {
		var tr struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int64  `json:"expires_in"`
			ExpiresAt   int64  `json:"expires_at"`
		}
		form := strings.NewReader("grant_type=client_credentials")
		if err := h.post(ctx, tokenURL, "application/x-www-form-urlencoded", form, key, &tr); err != nil {
			return nil, err
		}
		tok := &oauth2.Token{AccessToken: tr.AccessToken, Expiry: tokenExpiry(tr.ExpiresIn, lookoutTokenLifetime)}
		if tr.ExpiresIn <= 0 && tr.ExpiresAt > 0 {
			tok.Expiry = time.UnixMilli(tr.ExpiresAt)
		}
		return tok, nil
	})
	return l, nil
}

// Fetch returns one page of devices. The cursor is the last oid seen.
func (l *Lookout) Fetch(ctx context.Context, cursor string) (Page, error) {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(l.limit))
	if cursor != "" {
		q.Set("oid", cursor)
	}
	var page Page
	err := l.http.getJSON(ctx, l.devices+"?"+q.Encode(), func(r io.Reader) (err error) {
		page, err = decodeLookoutPage(r, l.limit)
		return err
	})
	if err != nil {
		return Page{}, fmt.Errorf("lookout: %w", err)
	}
	return page, nil
}

// decodeLookoutPage reads {"devices": [...]}, a page of at most limit
// devices; a full page has a next one, after its last oid.
func decodeLookoutPage(r io.Reader, limit int) (Page, error) {
	var resp struct {
		Devices *[]lookoutDevice `json:"devices"`
	}
	if err := decodeOne(r, &resp); err != nil {
		return Page{}, err
	}
	if resp.Devices == nil {
		return Page{}, errNoList("devices")
	}
	devices := *resp.Devices
	reports, err := reportsOf(devices, (*lookoutDevice).report)
	if err != nil {
		return Page{}, err
	}
	page := Page{Reports: reports}
	if n := len(devices); n > 0 && n >= limit {
		last := devices[n-1].OID
		if last == "" {
			return Page{}, errors.New("device without oid, cannot page")
		}
		page.NextCursor = string(last)
		page.HasMore = true
	}
	return page, nil
}

type lookoutDevice struct {
	GUID             string     `json:"guid"`
	OID              flexString `json:"oid"`
	Email            string     `json:"email"`
	Platform         string     `json:"platform"`
	ActivationStatus string     `json:"activation_status"`
	SecurityStatus   string     `json:"security_status"`
	CustomerDeviceID string     `json:"customer_device_id"`
	UpdatedTime      time.Time  `json:"updated_time"`
	Details          struct {
		ExternalID string `json:"external_id"`
	} `json:"details"`
	Software struct {
		OSVersion string `json:"os_version"`
	} `json:"software"`
}

func (d *lookoutDevice) report() (Report, bool) {
	id, alt := deviceIDs(d.Details.ExternalID, d.GUID, d.CustomerDeviceID)
	if id == "" {
		return Report{}, false
	}
	rep := Report{
		DeviceID:  id,
		AltIDs:    alt,
		Level:     LookoutLevel(d.SecurityStatus),
		User:      d.Email,
		Platform:  platform(d.Platform),
		OSVersion: d.Software.OSVersion,
		UpdatedAt: d.UpdatedTime,
	}
	if d.ActivationStatus != "" && d.ActivationStatus != "ACTIVATED" {
		rep.Level = policy.LevelUnknown
	}
	return rep, true
}

// LookoutLevel maps a Lookout security_status: SECURE, THREAT(S)_LOW,
// THREAT(S)_MEDIUM and THREAT(S)_HIGH (THREAT(S)_CRITICAL, which some
// tenants report, counts as high). Anything else is LevelUnknown.
func LookoutLevel(status string) policy.Level {
	switch status {
	case "SECURE":
		return policy.LevelSecured
	case "THREATS_LOW", "THREAT_LOW":
		return policy.LevelLow
	case "THREATS_MEDIUM", "THREAT_MEDIUM":
		return policy.LevelMedium
	case "THREATS_HIGH", "THREAT_HIGH", "THREATS_CRITICAL", "THREAT_CRITICAL":
		return policy.LevelHigh
	}
	return policy.LevelUnknown
}
