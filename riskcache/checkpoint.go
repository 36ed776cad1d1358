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
	// CheckPointDefaultURL is the Infinity Portal API gateway, used when
	// policy.Vendor.URL is empty for type checkpoint.
	CheckPointDefaultURL = "https://cloudinfra-gw.portal.checkpoint.com"
	// CheckPointTokenPath is appended to the URL when TokenURL is empty.
	CheckPointTokenPath = "/auth/external"
	// CheckPointDevicesPath is appended to the URL.
	CheckPointDevicesPath = "/app/SBM/external_api/v1/device_status/"

	checkPointMaxPageSize = 1000
	// checkPointTokenLifetime is assumed when the answer states none.
	checkPointTokenLifetime = 10 * time.Minute
	// checkPointActive is the device status of an active device.
	checkPointActive = "1"
)

// CheckPoint polls Check Point Harmony Mobile through the Infinity Portal
// external API.
//
// What the client assumes of the API (the Infinity Portal API documentation
// is behind a login; this follows Check Point's published SOAR integrations):
//   - An Infinity Portal API key (client id and access key, service Harmony
//     Mobile) is exchanged for a token: POST {url}/auth/external with
//     {"clientId", "accessKey"}, answering {"success": true, "data":
//     {"token", "expiresIn" (seconds)}}.
//   - GET {url}/app/SBM/external_api/v1/device_status/?limit=N&offset=M
//     answers {"meta": {"limit", "offset", "next", "total_count"},
//     "objects": [...]}; there is another page while meta.next is set (or,
//     without meta, while a page is full).
//   - A device has "id", "email", "risk" (0 no risk, 1 low, 2 medium, 3
//     high), "status" (-1 processing, 0 provisioned, 1 active, 4 inactive;
//     a number, its string, or a name), "os_type", "os_version",
//     "mdm_device_id" (the MDM's id, for Intune the Entra device id, when the
//     tenant is MDM-integrated) and "last_seen" (RFC 3339).
//
// Every sync is a full sync (NextCursor is empty after the last page). A
// device whose status is not active is LevelUnknown, whatever its risk.
//
// Device id: mdm_device_id when set, else the Harmony Mobile id, which is
// then also an alternative id.
type CheckPoint struct {
	http    vendorHTTP
	devices string
	limit   int
}

// NewCheckPoint returns a Check Point Harmony Mobile client. v.ClientID and
// v.ClientSecret (or ClientSecretFile: the access key) are required; v.URL
// defaults to CheckPointDefaultURL and v.TokenURL to {url}/auth/external.
func NewCheckPoint(v policy.Vendor, client *http.Client) (*CheckPoint, error) {
	if v.ClientID == "" || (v.ClientSecret == "" && v.ClientSecretFile == "") {
		return nil, errors.New("checkpoint needs client_id and client_secret (the access key)")
	}
	base, tokenURL := vendorURLs(v, CheckPointDefaultURL, CheckPointTokenPath)
	c := &CheckPoint{
		devices: joinURL(base, CheckPointDevicesPath),
		limit:   pageSize(v, checkPointMaxPageSize),
	}
	c.http = newLoginHTTP(v, client, v.ClientSecret, v.ClientSecretFile, func(ctx context.Context, h *vendorHTTP, key string) (*oauth2.Token, error) {
		var ar struct {
			Success bool   `json:"success"`
			Message string `json:"message"`
			Data    struct {
				Token     string `json:"token"`
				ExpiresIn int64  `json:"expiresIn"`
			} `json:"data"`
		}
		login := map[string]string{"clientId": v.ClientID, "accessKey": key}
		if err := h.postJSON(ctx, tokenURL, login, &ar); err != nil {
			return nil, err
		}
		if !ar.Success {
			return nil, fmt.Errorf("authentication refused: %s", ar.Message)
		}
		return &oauth2.Token{AccessToken: ar.Data.Token, Expiry: tokenExpiry(ar.Data.ExpiresIn, checkPointTokenLifetime)}, nil
	})
	return c, nil
}

// Fetch returns one page of devices. The cursor is the next offset.
func (c *CheckPoint) Fetch(ctx context.Context, cursor string) (Page, error) {
	offset := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 {
			return Page{}, fmt.Errorf("checkpoint: bad cursor %q", cursor)
		}
		offset = n
	}
	q := url.Values{}
	q.Set("limit", strconv.Itoa(c.limit))
	q.Set("offset", strconv.Itoa(offset))
	var page Page
	err := c.http.getJSON(ctx, c.devices+"?"+q.Encode(), func(r io.Reader) (err error) {
		page, err = decodeCheckPointPage(r, offset, c.limit)
		return err
	})
	if err != nil {
		return Page{}, fmt.Errorf("checkpoint: %w", err)
	}
	return page, nil
}

// decodeCheckPointPage reads {"meta": {"next"}, "objects": [...]}, the
// page at offset of at most limit devices.
func decodeCheckPointPage(r io.Reader, offset, limit int) (Page, error) {
	var resp struct {
		Meta *struct {
			Next flexString `json:"next"`
		} `json:"meta"`
		Objects *[]checkPointDevice `json:"objects"`
	}
	if err := decodeOne(r, &resp); err != nil {
		return Page{}, err
	}
	if resp.Objects == nil {
		return Page{}, errNoList("objects")
	}
	objects := *resp.Objects
	reports, err := reportsOf(objects, (*checkPointDevice).report)
	if err != nil {
		return Page{}, err
	}
	page := Page{Reports: reports}
	more := len(objects) >= limit
	if resp.Meta != nil {
		more = resp.Meta.Next != "" && len(objects) > 0
	}
	if more {
		page.NextCursor = strconv.Itoa(offset + len(objects))
		page.HasMore = true
	}
	return page, nil
}

type checkPointDevice struct {
	ID          flexString `json:"id"`
	MDMDeviceID string     `json:"mdm_device_id"`
	Email       string     `json:"email"`
	Risk        flexString `json:"risk"`
	Status      flexString `json:"status"`
	OSType      string     `json:"os_type"`
	OSVersion   string     `json:"os_version"`
	LastSeen    time.Time  `json:"last_seen"`
}

func (d *checkPointDevice) report() (Report, bool) {
	id, alt := deviceIDs(d.MDMDeviceID, string(d.ID))
	if id == "" {
		return Report{}, false
	}
	return Report{
		DeviceID:  id,
		AltIDs:    alt,
		Level:     CheckPointLevel(string(d.Risk), string(d.Status)),
		User:      d.Email,
		Platform:  platform(d.OSType),
		OSVersion: d.OSVersion,
		UpdatedAt: d.LastSeen,
	}, true
}

// CheckPointLevel maps a device's risk (0 to 3) and status: a device whose
// status is not active (1 or "active") is LevelUnknown, as is any other risk
// value.
func CheckPointLevel(risk, status string) policy.Level {
	if status != checkPointActive && !strings.EqualFold(status, "active") {
		return policy.LevelUnknown
	}
	switch risk {
	case "0":
		return policy.LevelSecured
	case "1":
		return policy.LevelLow
	case "2":
		return policy.LevelMedium
	case "3":
		return policy.LevelHigh
	}
	return policy.LevelUnknown
}
