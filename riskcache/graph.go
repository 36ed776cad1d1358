package riskcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/riskgate/riskgate/policy"
)

const (
	// GraphDefaultURL is Microsoft Graph's global endpoint, used when
	// policy.Vendor.URL is empty for type graph.
	GraphDefaultURL = "https://graph.microsoft.com"
	// GraphDefaultScope is the client-credentials scope used when
	// policy.Vendor.Scopes is empty for type graph.
	GraphDefaultScope = "https://graph.microsoft.com/.default"
	// GraphManagedDevicesPath is appended to the vendor URL.
	GraphManagedDevicesPath = "/v1.0/deviceManagement/managedDevices"
	// GraphSelect is the $select of every managed device query.
	GraphSelect = "id,azureADDeviceId,easDeviceId,userPrincipalName,operatingSystem,osVersion,partnerReportedThreatState,lastSyncDateTime"

	// graphMaxPageSize is the largest $top Intune honours for managed
	// devices.
	graphMaxPageSize = 1000
	// graphZeroID is the azureADDeviceId of a device not registered in
	// Entra ID.
	graphZeroID = "00000000-0000-0000-0000-000000000000"
)

// Graph polls Intune's managed devices through Microsoft Graph
// (GET {url}/v1.0/deviceManagement/managedDevices), reading the MTD
// partner's verdict from partnerReportedThreatState. Graph has no delta query
// for managed devices, so every sync pages through all of them following
// @odata.nextLink, and the last page's NextCursor is empty.
//
// A device is reported under its azureADDeviceId (the Entra device id that
// Intune certificate profiles put into {{AAD_Device_ID}}), or under the
// Intune id when it has none, with easDeviceId as an alternative id.
type Graph struct {
	http  vendorHTTP
	base  string
	first string
}

// NewGraph returns a Graph client. v.TokenURL
// (https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token),
// v.ClientID and v.ClientSecret (or ClientSecretFile) are required; v.URL
// defaults to GraphDefaultURL and v.Scopes to [GraphDefaultScope].
func NewGraph(v policy.Vendor, client *http.Client) (*Graph, error) {
	if v.TokenURL == "" || v.ClientID == "" || (v.ClientSecret == "" && v.ClientSecretFile == "") {
		return nil, errors.New("graph needs token_url, client_id and client_secret")
	}
	base := v.URL
	if base == "" {
		base = GraphDefaultURL
	}
	if _, err := url.Parse(base); err != nil {
		return nil, fmt.Errorf("graph url: %w", err)
	}
	scopes := v.Scopes
	if len(scopes) == 0 {
		scopes = []string{GraphDefaultScope}
	}
	h := newVendorHTTP(v, client, nil)
	h.tokens = &tokenCache{fetch: func(ctx context.Context) (*oauth2.Token, error) {
		sec, err := secret(v.ClientSecret, v.ClientSecretFile)
		if err != nil {
			return nil, err
		}
		cfg := clientcredentials.Config{
			ClientID:     v.ClientID,
			ClientSecret: sec,
			TokenURL:     v.TokenURL,
			Scopes:       scopes,
			// Entra documents the secret in the body; auto-detection
			// would retry a refused (or throttled) request in the other
			// style.
			AuthStyle: oauth2.AuthStyleInParams,
		}
		ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, h.client), h.timeout)
		defer cancel()
		tok, err := cfg.Token(ctx)
		return tok, oauthError(err)
	}}
	q := url.Values{}
	q.Set("$select", GraphSelect)
	q.Set("$top", strconv.Itoa(pageSize(v, graphMaxPageSize)))
	return &Graph{
		http:  h,
		base:  base,
		first: joinURL(base, GraphManagedDevicesPath) + "?" + q.Encode(),
	}, nil
}

// Fetch returns one page of managed devices. An empty cursor starts a full
// sync; any other cursor is the previous page's @odata.nextLink, which must
// point at the configured Graph host.
func (g *Graph) Fetch(ctx context.Context, cursor string) (Page, error) {
	u := g.first
	if cursor != "" {
		if !sameOrigin(g.base, cursor) {
			return Page{}, errors.New("graph: cursor is not a link to the configured graph url")
		}
		u = cursor
	}
	var page Page
	err := g.http.getJSON(ctx, u, func(r io.Reader) error {
		var err error
		page.Reports, page.NextCursor, err = decodeGraphPage(r)
		return err
	})
	if err != nil {
		return Page{}, fmt.Errorf("graph: %w", err)
	}
	page.HasMore = page.NextCursor != ""
	return page, nil
}

// GraphLevel maps a partnerReportedThreatState (Graph enum
// managedDevicePartnerReportedHealthState): secured, lowSeverity,
// mediumSeverity, highSeverity and compromised have levels; unknown,
// activated, deactivated, unresponsive, misconfigured and any value added
// later are LevelUnknown, never secured.
func GraphLevel(state string) policy.Level { return graphLevel([]byte(state)) }

// graphLevel is GraphLevel without allocating.
func graphLevel(state []byte) policy.Level {
	switch string(state) {
	case "secured":
		return policy.LevelSecured
	case "lowSeverity":
		return policy.LevelLow
	case "mediumSeverity":
		return policy.LevelMedium
	case "highSeverity", "compromised":
		return policy.LevelHigh
	}
	return policy.LevelUnknown
}

// graphDecoder streams one page with a token decoder: no reflection, and
// the only allocations are the strings a Report keeps.
type graphDecoder struct {
	dec  *jsontext.Decoder
	name []byte // the current member name, unquoted
	val  []byte // the current string value, unquoted
}

// decodeGraphPage reads {"value": [...], "@odata.nextLink": "..."}; other
// members (@odata.context, @odata.count) are skipped.
func decodeGraphPage(r io.Reader) ([]Report, string, error) {
	g := graphDecoder{dec: jsontext.NewDecoder(r, jsontext.AllowDuplicateNames(true))}
	if err := g.delim('{'); err != nil {
		return nil, "", err
	}
	var (
		reports  []Report
		next     string
		sawValue bool
	)
	for {
		more, err := g.more('}')
		if err != nil {
			return nil, "", err
		}
		if !more {
			break
		}
		if err := g.readName(); err != nil {
			return nil, "", err
		}
		switch string(g.name) {
		case "@odata.nextLink":
			if next, err = g.readString(); err != nil {
				return nil, "", err
			}
		case "value":
			sawValue = true
			if reports, err = g.devices(); err != nil {
				return nil, "", err
			}
		default:
			if err := g.dec.SkipValue(); err != nil {
				return nil, "", err
			}
		}
	}
	if !sawValue {
		return nil, "", errors.New("no value array in response")
	}
	if _, err := g.dec.ReadToken(); err != io.EOF {
		return nil, "", errors.New("trailing data after JSON object")
	}
	return reports, next, nil
}

func (g *graphDecoder) devices() ([]Report, error) {
	if err := g.delim('['); err != nil {
		return nil, err
	}
	reports := make([]Report, 0, graphMaxPageSize)
	// One backing array for every device's AltIDs on the page.
	alt := make([]string, 0, graphMaxPageSize)
	for {
		more, err := g.more(']')
		if err != nil {
			return nil, err
		}
		if !more {
			return reports, nil
		}
		rep, eas, err := g.device()
		if err != nil {
			return nil, err
		}
		if rep.DeviceID == "" {
			// The page is all or nothing, as for every vendor.
			return nil, fmt.Errorf("device %d: no id", len(reports))
		}
		if eas != "" && eas != rep.DeviceID {
			alt = append(alt, eas)
			rep.AltIDs = alt[len(alt)-1 : len(alt) : len(alt)]
		}
		reports = append(reports, rep)
	}
}

// device reads one managedDevice. The report's DeviceID is the
// azureADDeviceId, or the Intune id when that is empty or all zeros.
func (g *graphDecoder) device() (rep Report, eas string, err error) {
	if err := g.delim('{'); err != nil {
		return Report{}, "", err
	}
	var id, aad string
	for {
		more, err := g.more('}')
		if err != nil {
			return Report{}, "", err
		}
		if !more {
			break
		}
		if err := g.readName(); err != nil {
			return Report{}, "", err
		}
		switch string(g.name) {
		case "id":
			id, err = g.readString()
		case "azureADDeviceId":
			aad, err = g.readString()
		case "easDeviceId":
			eas, err = g.readString()
		case "userPrincipalName":
			rep.User, err = g.readString()
		case "osVersion":
			rep.OSVersion, err = g.readString()
		case "operatingSystem":
			if err = g.readRaw(); err == nil {
				rep.Platform = platformBytes(g.val)
			}
		case "partnerReportedThreatState":
			if err = g.readRaw(); err == nil {
				rep.Level = graphLevel(g.val)
			}
		case "lastSyncDateTime":
			if err = g.readRaw(); err == nil && len(g.val) > 0 {
				rep.UpdatedAt, err = time.Parse(time.RFC3339Nano, string(g.val))
			}
		default:
			err = g.dec.SkipValue()
		}
		if err != nil {
			return Report{}, "", fmt.Errorf("device %q: %w", id, err)
		}
	}
	rep.DeviceID = aad
	if aad == "" || aad == graphZeroID {
		rep.DeviceID = id
	}
	return rep, eas, nil
}

// delim reads the next token, which must be d.
func (g *graphDecoder) delim(d jsontext.Kind) error {
	t, err := g.dec.ReadToken()
	if err != nil {
		return err
	}
	if t.Kind() != d {
		return fmt.Errorf("want %v, got %v", d, t.Kind())
	}
	return nil
}

// more reports whether the current object or array has another member,
// consuming its closing delimiter when it has not.
func (g *graphDecoder) more(end jsontext.Kind) (bool, error) {
	switch g.dec.PeekKind() {
	case end:
		return false, g.delim(end)
	case 0:
		_, err := g.dec.ReadToken()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return false, err
	}
	return true, nil
}

// readName unquotes the next member name into g.name.
func (g *graphDecoder) readName() error {
	v, err := g.dec.ReadValue()
	if err != nil {
		return err
	}
	g.name, err = unquote(g.name[:0], v)
	return err
}

// readRaw unquotes the next string value into g.val; null leaves it empty.
func (g *graphDecoder) readRaw() error {
	v, err := g.dec.ReadValue()
	if err != nil {
		return err
	}
	switch v.Kind() {
	case 'n':
		g.val = g.val[:0]
		return nil
	case '"':
		g.val, err = unquote(g.val[:0], v)
		return err
	}
	return fmt.Errorf("want a string, got %v", v.Kind())
}

// unquote appends the content of the validated JSON string v to dst,
// copying it directly when it has no escapes.
func unquote(dst []byte, v jsontext.Value) ([]byte, error) {
	if len(v) >= 2 && bytes.IndexByte(v, '\\') < 0 {
		return append(dst, v[1:len(v)-1]...), nil
	}
	return jsontext.AppendUnquote(dst, v)
}

// readString reads a string value (null is "").
func (g *graphDecoder) readString() (string, error) {
	if err := g.readRaw(); err != nil || len(g.val) == 0 {
		return "", err
	}
	return string(g.val), nil
}

// platformBytes is platform without allocating for the usual names.
func platformBytes(b []byte) string {
	switch string(b) {
	case "iOS":
		return "ios"
	case "Android":
		return "android"
	case "Windows":
		return "windows"
	case "macOS":
		return "macos"
	}
	return platform(string(b))
}

// oauthError turns a token endpoint's refusal into an *HTTPError, so that a
// throttled or failing token endpoint is retried like any vendor call.
func oauthError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return err
	}
	body := re.Body
	if len(body) > maxErrorBody {
		body = body[:maxErrorBody]
	}
	return &HTTPError{
		Status:     re.Response.StatusCode,
		RetryAfter: ParseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now()),
		Body:       string(body),
	}
}
