package riskcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/riskgate/riskgate/policy"
)

// MaxResponseBytes caps a vendor's response body; a longer one is a decode
// error rather than unbounded memory.
const MaxResponseBytes = 64 << 20

// Generic defaults, used when the vendor configuration leaves them zero.
const (
	DefaultPageSize = 1000
	DefaultTimeout  = 30 * time.Second
)

// DecodeError is a vendor answer riskgate could not understand. Syncers
// count it as kind "decode".
type DecodeError struct {
	Err error
}

func (e *DecodeError) Error() string { return "riskcache: decode: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// Generic polls DESIGN.md's generic vendor pull API:
// GET {url}?cursor=C&limit=N with a bearer token.
type Generic struct {
	url       string
	token     string
	tokenFile string
	pageSize  int
	timeout   time.Duration
	client    *http.Client
	// maxBody bounds a response body; 0 means MaxResponseBytes.
	maxBody int64
}

// NewGeneric returns a Source for a vendor of type generic. A nil client
// means http.DefaultClient. TokenFile, when set and Token is empty, is read
// on every request so that a rotated token is picked up.
func NewGeneric(v policy.Vendor, client *http.Client) *Generic {
	g := &Generic{
		url:       v.URL,
		token:     v.Token,
		tokenFile: v.TokenFile,
		pageSize:  v.PageSize,
		timeout:   v.Timeout.Duration,
		client:    client,
	}
	if g.pageSize <= 0 {
		g.pageSize = DefaultPageSize
	}
	if g.timeout <= 0 {
		g.timeout = DefaultTimeout
	}
	if g.client == nil {
		g.client = http.DefaultClient
	}
	g.client = sameOriginRedirects(g.client)
	return g
}

// Fetch returns the page at cursor; an empty cursor starts a full sync.
func (g *Generic) Fetch(ctx context.Context, cursor string) (Page, error) {
	u, err := url.Parse(g.url)
	if err != nil {
		return Page{}, fmt.Errorf("riskcache: generic url: %w", err)
	}
	q := u.Query()
	q.Set("cursor", cursor)
	q.Set("limit", strconv.Itoa(g.pageSize))
	u.RawQuery = q.Encode()

	token := g.token
	if token == "" && g.tokenFile != "" {
		b, err := os.ReadFile(g.tokenFile)
		if err != nil {
			return Page{}, fmt.Errorf("riskcache: generic token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}

	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Page{}, fmt.Errorf("riskcache: generic request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return Page{}, fmt.Errorf("riskcache: generic fetch: %w", err)
	}
	defer func() {
		// Drain a little so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Page{}, &HTTPError{
			Status:     resp.StatusCode,
			RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			Body:       string(body),
		}
	}
	max := g.maxBody
	if max <= 0 {
		max = MaxResponseBytes
	}
	return ParsePage(resp.Body, max)
}

// deviceJSON is one device object of the generic API and the webhook.
type deviceJSON struct {
	DeviceID  string `json:"device_id"`
	Risk      string `json:"risk"`
	User      string `json:"user"`
	Platform  string `json:"platform"`
	OSVersion string `json:"os_version"`
	UpdatedAt string `json:"updated_at"`
	// Deleted (an extension) removes the device, for deltas.
	Deleted bool `json:"deleted"`
}

type pageJSON struct {
	// Devices is required: a body without it (an empty object, null, an
	// error object answered with 200) is not an empty page, which would
	// end a full sync with every device removed.
	Devices    *[]deviceJSON `json:"devices"`
	NextCursor string        `json:"next_cursor"`
	HasMore    bool          `json:"has_more"`
}

// ParsePage decodes a generic API page or a webhook body ({"devices":[...]},
// where the cursor fields are absent), reading at most limit bytes (0: no
// limit). Risk strings other than secured, low, medium and high mean
// unknown. The page is all or nothing: a body without a "devices" array,
// or with one device that is not understood (no device_id, a bad
// updated_at, a field of the wrong type), is rejected whole, so that the
// cache keeps the vendor's last good data for every device on it. Every
// error is a *DecodeError; nothing is returned with it.
func ParsePage(r io.Reader, limit int64) (Page, error) {
	var cr *countingReader
	if limit > 0 {
		cr = &countingReader{r: io.LimitReader(r, limit+1)}
		r = cr
	}
	var pj pageJSON
	dec := json.NewDecoder(r)
	if err := dec.Decode(&pj); err != nil {
		if cr != nil && cr.n > limit {
			return Page{}, &DecodeError{Err: fmt.Errorf("body exceeds %d bytes", limit)}
		}
		return Page{}, &DecodeError{Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Page{}, &DecodeError{Err: errors.New("trailing data after JSON object")}
	}
	if pj.Devices == nil {
		return Page{}, &DecodeError{Err: errors.New(`no "devices" array`)}
	}
	if pj.HasMore && pj.NextCursor == "" {
		// Asking for the next page again from the start would loop.
		return Page{}, &DecodeError{Err: errors.New("has_more without next_cursor")}
	}
	devices := *pj.Devices
	p := Page{NextCursor: pj.NextCursor, HasMore: pj.HasMore, Reports: make([]Report, 0, len(devices))}
	for i, d := range devices {
		if d.DeviceID == "" {
			return Page{}, &DecodeError{Err: fmt.Errorf("device %d: missing device_id", i)}
		}
		var at time.Time
		if d.UpdatedAt != "" {
			t, err := time.Parse(time.RFC3339, d.UpdatedAt)
			if err != nil {
				return Page{}, &DecodeError{Err: fmt.Errorf("device %d: updated_at: %w", i, err)}
			}
			at = t
		}
		p.Reports = append(p.Reports, Report{
			DeviceID:  d.DeviceID,
			Level:     GenericLevel(d.Risk),
			User:      d.User,
			Platform:  strings.ToLower(d.Platform),
			OSVersion: d.OSVersion,
			UpdatedAt: at,
			Deleted:   d.Deleted,
		})
	}
	return p, nil
}

// GenericLevel maps the generic API's risk string to a level: secured, low,
// medium and high (any case); anything else is unknown, never secured.
func GenericLevel(s string) policy.Level {
	switch strings.ToLower(s) {
	case "secured":
		return policy.LevelSecured
	case "low":
		return policy.LevelLow
	case "medium":
		return policy.LevelMedium
	case "high":
		return policy.LevelHigh
	}
	return policy.LevelUnknown
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
