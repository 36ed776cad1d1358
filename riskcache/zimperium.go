package riskcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/riskgate/riskgate/policy"
)

const (
	// ZimperiumTokenPath is appended to the URL when TokenURL is empty.
	ZimperiumTokenPath = "/auth/v1/api_keys/login"
	// ZimperiumStartScrollPath starts a device scroll.
	ZimperiumStartScrollPath = "/devices/public/v2/devices/start-scroll"
	// ZimperiumNextScrollPath continues a device scroll.
	ZimperiumNextScrollPath = "/devices/public/v2/devices/next-scroll"

	zimperiumMaxPageSize = 1000
	// zimperiumTokenLifetime is assumed when the login answer states none.
	zimperiumTokenLifetime = 10 * time.Minute
)

// Zimperium polls Zimperium MTD (zConsole) through its public API v2.
//
// What the client assumes of the API (Zimperium's zConsole API
// documentation and the published Cortex XSOAR "Zimperium v2" integration):
//   - An API key (client id and secret, created in zConsole under Account
//     Management > Authorizations) is exchanged for a token:
//     POST {url}/auth/v1/api_keys/login with {"clientId", "secret"},
//     answering {"accessToken", "accessTokenExpiration"} (expiration as an
//     RFC 3339 time or Unix milliseconds; 10 minutes is assumed without one).
//   - GET {url}/devices/public/v2/devices/start-scroll?size=N starts a
//     scroll and GET {url}/devices/public/v2/devices/next-scroll?scrollId=S&size=N
//     continues it; each answers {"content": [...], "scrollId": S}. A page
//     shorter than N, or without a scrollId, is the last.
//   - A device has "id", "zdeviceId", "riskPostureName" (NORMAL, LOW,
//     ELEVATED, CRITICAL), "deviceOwner": {"email"}, "activationName",
//     "os": {"name", "version"}, "lastSeen" (Unix milliseconds), "deleted"
//     and, for MDM-integrated tenants, "mdmId".
//
// Every sync is a full sync (NextCursor is empty after the last page).
//
// Device id: the MDM's id ("mdmId", for Intune the Entra device id that the
// Intune connector registers) when set, else Zimperium's "id"; "zdeviceId"
// and "id" are alternative ids. A deleted device is reported Deleted.
type Zimperium struct {
	http  vendorHTTP
	start string
	next  string
	size  int
}

// NewZimperium returns a Zimperium client. v.URL (the zConsole API host of
// the tenant's region), v.ClientID and v.ClientSecret (or
// ClientSecretFile) are required; v.TokenURL defaults to
// {url}/auth/v1/api_keys/login.
func NewZimperium(v policy.Vendor, client *http.Client) (*Zimperium, error) {
	if v.URL == "" || v.ClientID == "" || (v.ClientSecret == "" && v.ClientSecretFile == "") {
		return nil, errors.New("zimperium needs url, client_id and client_secret")
	}
	base, tokenURL := vendorURLs(v, "", ZimperiumTokenPath)
	z := &Zimperium{
		start: joinURL(base, ZimperiumStartScrollPath),
		next:  joinURL(base, ZimperiumNextScrollPath),
		size:  pageSize(v, zimperiumMaxPageSize),
	}
	z.http = newLoginHTTP(v, client, v.ClientSecret, v.ClientSecretFile, func(ctx context.Context, h *vendorHTTP, sec string) (*oauth2.Token, error) {
		var lr struct {
			AccessToken           string     `json:"accessToken"`
			AccessTokenExpiration flexString `json:"accessTokenExpiration"`
		}
		login := map[string]string{"clientId": v.ClientID, "secret": sec}
		if err := h.postJSON(ctx, tokenURL, login, &lr); err != nil {
			return nil, err
		}
		tok := &oauth2.Token{AccessToken: lr.AccessToken, Expiry: time.Now().Add(zimperiumTokenLifetime)}
		if exp := string(lr.AccessTokenExpiration); exp != "" {
			if ms, err := strconv.ParseInt(exp, 10, 64); err == nil {
				tok.Expiry = time.UnixMilli(ms)
			} else if t, err := time.Parse(time.RFC3339, exp); err == nil {
				tok.Expiry = t
			}
		}
		return tok, nil
	})
	return z, nil
}

// Fetch returns one page of devices. The cursor is the scroll id.
func (z *Zimperium) Fetch(ctx context.Context, cursor string) (Page, error) {
	q := url.Values{}
	q.Set("size", strconv.Itoa(z.size))
	u := z.start
	if cursor != "" {
		q.Set("scrollId", cursor)
		u = z.next
	}
	var page Page
	err := z.http.getJSON(ctx, u+"?"+q.Encode(), func(r io.Reader) (err error) {
		page, err = decodeZimperiumPage(r, z.size)
		return err
	})
	if err != nil {
		return Page{}, fmt.Errorf("zimperium: %w", err)
	}
	return page, nil
}

// decodeZimperiumPage reads {"content": [...], "scrollId": S}, a page of
// at most size devices; a full page with a scroll id has a next one.
func decodeZimperiumPage(r io.Reader, size int) (Page, error) {
	var resp struct {
		Content  *[]zimperiumDevice `json:"content"`
		ScrollID string             `json:"scrollId"`
	}
	if err := decodeOne(r, &resp); err != nil {
		return Page{}, err
	}
	if resp.Content == nil {
		return Page{}, errNoList("content")
	}
	reports, err := reportsOf(*resp.Content, (*zimperiumDevice).report)
	if err != nil {
		return Page{}, err
	}
	page := Page{Reports: reports}
	if len(reports) >= size && resp.ScrollID != "" {
		page.NextCursor = resp.ScrollID
		page.HasMore = true
	}
	return page, nil
}

type zimperiumDevice struct {
	ID              flexString `json:"id"`
	ZDeviceID       string     `json:"zdeviceId"`
	MDMID           string     `json:"mdmId"`
	RiskPostureName string     `json:"riskPostureName"`
	ActivationName  string     `json:"activationName"`
	LastSeen        int64      `json:"lastSeen"`
	Deleted         bool       `json:"deleted"`
	DeviceOwner     struct {
		Email string `json:"email"`
	} `json:"deviceOwner"`
	OS struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"os"`
}

func (d *zimperiumDevice) report() (Report, bool) {
	id, alt := deviceIDs(d.MDMID, string(d.ID), d.ZDeviceID)
	if id == "" {
		return Report{}, false
	}
	rep := Report{
		DeviceID:  id,
		AltIDs:    alt,
		Level:     ZimperiumLevel(d.RiskPostureName),
		User:      d.DeviceOwner.Email,
		Platform:  platform(d.OS.Name),
		OSVersion: d.OS.Version,
		Deleted:   d.Deleted,
	}
	if rep.User == "" {
		rep.User = d.ActivationName
	}
	if d.LastSeen > 0 {
		rep.UpdatedAt = time.UnixMilli(d.LastSeen).UTC()
	}
	return rep, true
}

// ZimperiumLevel maps a riskPostureName: NORMAL, LOW, ELEVATED, CRITICAL.
// Anything else is LevelUnknown.
func ZimperiumLevel(posture string) policy.Level {
	switch posture {
	case "NORMAL":
		return policy.LevelSecured
	case "LOW":
		return policy.LevelLow
	case "ELEVATED":
		return policy.LevelMedium
	case "CRITICAL":
		return policy.LevelHigh
	}
	return policy.LevelUnknown
}
