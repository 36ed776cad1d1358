package riskcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/riskgate/riskgate/policy"
)

// This file holds what the token-based vendor clients (Lookout, Zimperium,
// Check Point) share on top of vendorHTTP: default URLs, token requests,
// JSON decoding and turning a page of vendor devices into reports.

// vendorURLs returns the API base, v.URL or else defaultBase, and the token
// endpoint, v.TokenURL or else tokenPath under the base.
func vendorURLs(v policy.Vendor, defaultBase, tokenPath string) (base, tokenURL string) {
	base = v.URL
	if base == "" {
		base = defaultBase
	}
	tokenURL = v.TokenURL
	if tokenURL == "" {
		tokenURL = joinURL(base, tokenPath)
	}
	return base, tokenURL
}

// loginFunc exchanges a vendor's secret for an access token, sending its
// requests through h (whose token cache it fills, so it must not use it).
type loginFunc func(ctx context.Context, h *vendorHTTP, secret string) (*oauth2.Token, error)

// newLoginHTTP is newVendorHTTP for a vendor whose tokens come from login.
// The secret is value, or else the content of file, read again for every
// login so that a rotated secret is picked up without a restart.
func newLoginHTTP(v policy.Vendor, client *http.Client, value, file string, login loginFunc) vendorHTTP {
	h := newVendorHTTP(v, client, nil)
	plain := h // without the token cache
	h.tokens = &tokenCache{fetch: func(ctx context.Context) (*oauth2.Token, error) {
		sec, err := secret(value, file)
		if err != nil {
			return nil, err
		}
		return login(ctx, &plain, sec)
	}}
	return h
}

// decodeJSON returns a decode function for vendorHTTP that reads a JSON
// body into v.
func decodeJSON(v any) func(io.Reader) error {
	return func(r io.Reader) error { return json.NewDecoder(r).Decode(v) }
}

// decodeOne reads exactly one JSON value from r into v: data after it (a
// second object, an HTML error page appended by a proxy) is an error.
func decodeOne(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// errNoList is a page whose device list is absent or null: not an empty
// page, which would end a full sync with every device removed.
func errNoList(member string) error {
	return fmt.Errorf("no %q array in response", member)
}

// post sends body to u as contentType, with bearer as the Authorization
// when it is set, and decodes a 2xx JSON answer into out. It does not use
// the token cache: it is how tokens are fetched.
func (h *vendorHTTP) post(ctx context.Context, u, contentType string, body io.Reader, bearer string, out any) error {
	req, err := http.NewRequest(http.MethodPost, u, body)
	if err != nil {
		return err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	return h.do(ctx, req, decodeJSON(out))
}

// postJSON is post with in encoded as JSON.
func (h *vendorHTTP) postJSON(ctx context.Context, u string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return h.post(ctx, u, "application/json", bytes.NewReader(body), "", out)
}

// reportsOf turns a page of vendor devices into reports. A device report
// rejects (one without an id) rejects the whole page: a vendor answer that
// is wrong in part is not trusted in part, and the cache keeps the
// vendor's last good data for every device on the page.
func reportsOf[D any](devices []D, report func(*D) (Report, bool)) ([]Report, error) {
	reports := make([]Report, 0, len(devices))
	for i := range devices {
		rep, ok := report(&devices[i])
		if !ok {
			return nil, fmt.Errorf("device %d: no id", i)
		}
		reports = append(reports, rep)
	}
	return reports, nil
}

// deviceIDs picks the id a device is reported under, mdm (the MDM's id)
// when set, else own (the vendor's id), and its alternative ids: those of
// own and more that are set and differ from it. The id is empty when mdm
// and own are.
func deviceIDs(mdm, own string, more ...string) (id string, alt []string) {
	id = mdm
	if id == "" {
		id = own
	}
	if own != "" && own != id {
		alt = append(alt, own)
	}
	for _, m := range more {
		if m != "" && m != id {
			alt = append(alt, m)
		}
	}
	return id, alt
}

// flexString decodes a JSON string or number as a string (vendors differ,
// and change, on whether ids are numbers).
type flexString string

// UnmarshalJSON accepts a string, a number or null.
func (s *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*s = flexString(n.String())
	return nil
}
