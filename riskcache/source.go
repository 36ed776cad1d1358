package riskcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/riskgate/riskgate/policy"
)

// Vendor types accepted in policy.Vendor.Type.
const (
	TypeGeneric    = "generic"
	TypeGraph      = "graph"
	TypeLookout    = "lookout"
	TypeZimperium  = "zimperium"
	TypeCheckPoint = "checkpoint"
)

const (
	// defaultTimeout bounds one HTTP request when policy.Vendor.Timeout is 0.
	defaultTimeout = 30 * time.Second
	// defaultPageSize is asked for when policy.Vendor.PageSize is 0.
	defaultPageSize = 1000
	// maxErrorBody is how much of an error response HTTPError keeps.
	maxErrorBody = 512
	// maxDrain is how much of an unread body is read to reuse the connection.
	maxDrain = 64 << 10
)

// NewSource returns the client for v.Type. client sends every request (a nil
// client means http.DefaultClient); each request is bounded by v.Timeout
// (default 30s).
func NewSource(v policy.Vendor, client *http.Client) (Source, error) {
	if client == nil {
		client = http.DefaultClient
	}
	var (
		s   Source
		err error
	)
	switch v.Type {
	case TypeGeneric:
		s = NewGeneric(v, client)
	case TypeGraph:
		s, err = NewGraph(v, client)
	case TypeLookout:
		s, err = NewLookout(v, client)
	case TypeZimperium:
		s, err = NewZimperium(v, client)
	case TypeCheckPoint:
		s, err = NewCheckPoint(v, client)
	default:
		return nil, fmt.Errorf("riskcache: vendor %s: unknown type %q (want %s, %s, %s, %s or %s)",
			v.Name, v.Type, TypeGeneric, TypeGraph, TypeLookout, TypeZimperium, TypeCheckPoint)
	}
	if err != nil {
		return nil, fmt.Errorf("riskcache: vendor %s: %w", v.Name, err)
	}
	return s, nil
}

// vendorHTTP is what every vendor client shares: the HTTP client, the
// per-request timeout and, for vendors with access tokens, the token cache.
type vendorHTTP struct {
	client  *http.Client
	timeout time.Duration
	tokens  *tokenCache
	// maxBody bounds a response body; 0 means MaxResponseBytes.
	maxBody int64
}

func newVendorHTTP(v policy.Vendor, client *http.Client, fetch func(ctx context.Context) (*oauth2.Token, error)) vendorHTTP {
	if client == nil {
		client = http.DefaultClient
	}
	timeout := v.Timeout.Duration
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	h := vendorHTTP{client: sameOriginRedirects(client), timeout: timeout}
	if fetch != nil {
		h.tokens = &tokenCache{fetch: fetch}
	}
	return h
}

// getJSON sends an authorised GET to u and hands a 2xx body to decode, all
// within one request timeout. A 401 drops the cached token so that the next
// call fetches a new one.
func (h *vendorHTTP) getJSON(ctx context.Context, u string, decode func(io.Reader) error) error {
	var token string
	if h.tokens != nil {
		var err error
		if token, err = h.tokens.token(ctx); err != nil {
			return fmt.Errorf("token: %w", err)
		}
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	err = h.do(ctx, req, decode)
	var he *HTTPError
	if h.tokens != nil && errors.As(err, &he) && he.Status == http.StatusUnauthorized {
		h.tokens.invalidate(token)
	}
	return err
}

// do sends req bounded by the request timeout; a non-2xx answer is an
// *HTTPError, a 2xx body goes to decode.
func (h *vendorHTTP) do(ctx context.Context, req *http.Request, decode func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	resp, err := h.client.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newHTTPError(resp)
	}
	max := h.maxBody
	if max <= 0 {
		max = MaxResponseBytes
	}
	if err := decode(limitBody(resp.Body, max)); err != nil {
		return fmt.Errorf("decode %s: %w", redactURL(req.URL), err)
	}
	return nil
}

// sameOriginRedirects returns a copy of client that follows a redirect
// only to the scheme, host and port of the request it answers: a vendor (or
// whoever answers in its name) must not send riskgate's bearer token, or
// its requests for risk data, to another host, nor from https to http.
// (net/http drops Authorization only for another domain, keeping it for
// another port or a subdomain.) A refused redirect is an error.
func sameOriginRedirects(client *http.Client) *http.Client {
	c := *client
	next := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !sameOrigin(via[0].URL.String(), req.URL.String()) {
			return fmt.Errorf("redirect to %s refused: not the origin asked", redactURL(req.URL))
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// limitBody returns r, failing with a *DecodeError once it has given max
// bytes and would give more, so that a huge answer costs a bounded amount
// of memory.
func limitBody(r io.Reader, max int64) io.Reader {
	return &maxBytesReader{r: r, left: max, max: max}
}

type maxBytesReader struct {
	r         io.Reader
	left, max int64
}

func (m *maxBytesReader) Read(p []byte) (int, error) {
	if m.left < 0 {
		return 0, &DecodeError{Err: fmt.Errorf("body exceeds %d bytes", m.max)}
	}
	if int64(len(p)) > m.left+1 {
		p = p[:m.left+1]
	}
	n, err := m.r.Read(p)
	if int64(n) <= m.left {
		m.left -= int64(n)
		return n, err
	}
	n, m.left = int(m.left), -1
	return n, &DecodeError{Err: fmt.Errorf("body exceeds %d bytes", m.max)}
}

// newHTTPError reads the start of a failed response.
func newHTTPError(resp *http.Response) *HTTPError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return &HTTPError{
		Status:     resp.StatusCode,
		RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:       strings.TrimSpace(string(body)),
	}
}

// redactURL is u without its query, which may hold cursors or keys.
func redactURL(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	c.User = nil
	return c.String()
}

// tokenCache holds an access token and fetches a new one when there is none
// or it is about to expire (oauth2.Token.Valid allows a 10s margin).
type tokenCache struct {
	fetch func(ctx context.Context) (*oauth2.Token, error)

	mu  sync.Mutex
	tok *oauth2.Token
}

func (c *tokenCache) token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Valid() {
		return c.tok.AccessToken, nil
	}
	tok, err := c.fetch(ctx)
	if err != nil {
		return "", err
	}
	if tok == nil || tok.AccessToken == "" {
		return "", errors.New("token endpoint returned no access token")
	}
	c.tok = tok
	return tok.AccessToken, nil
}

// invalidate forgets the token the vendor refused, unless it was already
// replaced.
func (c *tokenCache) invalidate(refused string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && c.tok.AccessToken == refused {
		c.tok = nil
	}
}

// secret returns value, or else the content of file without surrounding
// white space. Files are read on every token fetch so that a rotated secret
// is picked up without a restart.
func secret(value, file string) (string, error) {
	if value != "" || file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// tokenExpiry turns a token response's lifetime into an expiry time. A
// token without one is used for fallback, then fetched again (a 401 also
// drops it early).
func tokenExpiry(expiresIn int64, fallback time.Duration) time.Time {
	if expiresIn > 0 {
		return time.Now().Add(time.Duration(expiresIn) * time.Second)
	}
	return time.Now().Add(fallback)
}

// joinURL appends path to base, keeping base's path prefix.
func joinURL(base, path string) string {
	return strings.TrimRight(base, "/") + path
}

// pageSize is v.PageSize bounded to (0, max].
func pageSize(v policy.Vendor, max int) int {
	n := v.PageSize
	if n <= 0 {
		n = defaultPageSize
	}
	if max > 0 && n > max {
		n = max
	}
	return n
}

// sameOrigin reports whether next has base's scheme and host, so that a
// cursor never sends a token to another host.
func sameOrigin(base, next string) bool {
	b, err := url.Parse(base)
	if err != nil {
		return false
	}
	n, err := url.Parse(next)
	if err != nil {
		return false
	}
	return strings.EqualFold(b.Scheme, n.Scheme) && strings.EqualFold(b.Host, n.Host)
}

// platform returns the lower-cased platform name, without allocating for
// the usual ones.
func platform(s string) string {
	switch s {
	case "":
		return ""
	case "iOS", "IOS", "ios":
		return "ios"
	case "Android", "ANDROID", "android":
		return "android"
	case "Windows", "WINDOWS", "windows":
		return "windows"
	case "macOS", "MACOS", "MacOS", "macos":
		return "macos"
	case "iPadOS", "IPADOS", "ipados":
		return "ipados"
	}
	return strings.ToLower(s)
}
