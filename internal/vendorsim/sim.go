package vendorsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Fault makes the next Count device-list requests (or token requests, with
// Token) fail instead of being served.
type Fault struct {
	// Count is how many requests fail; 0 means 1.
	Count int
	// Status is the HTTP status; 0 means 200 (useful with Garbage).
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Garbage sends a body that is not valid JSON.
	Garbage bool
	// Token applies the fault to the token endpoint instead.
	Token bool
	// Body, when set, is sent verbatim instead of the error body (a
	// truncated page, HTML from a captive portal, JSON of the wrong shape).
	Body string
	// Empty sends no body at all.
	Empty bool
	// ContentType replaces application/json.
	ContentType string
	// Location, when set, is sent as the Location header (with a 3xx
	// Status, a redirect).
	Location string
	// Hang, when not nil, holds the answer back until it is closed: a
	// vendor that does not answer in time.
	Hang <-chan struct{}
}

// garbageBody is what a Garbage fault sends.
const garbageBody = `{"value": [{"id": "trunc`

// core is what every vendor simulator shares: the store, the faults, the
// issued tokens and request counters.
type core struct {
	store *Store

	mu     sync.Mutex
	faults []Fault
	tokens map[string]bool

	apiRequests   atomic.Int64
	tokenRequests atomic.Int64
}

func newCore(store *Store) core {
	return core{store: store, tokens: make(map[string]bool)}
}

// Inject queues a fault; queued faults are served in order.
func (c *core) Inject(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, f)
}

// RevokeTokens makes every issued access token invalid, as when a vendor
// expires or revokes tokens early.
func (c *core) RevokeTokens() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.tokens)
}

// Requests is the number of device-list requests received, faulted ones
// included.
func (c *core) Requests() int { return int(c.apiRequests.Load()) }

// TokenRequests is the number of token requests received.
func (c *core) TokenRequests() int { return int(c.tokenRequests.Load()) }

// fault serves the next queued fault for the endpoint kind, if any.
func (c *core) fault(w http.ResponseWriter, token bool) bool {
	c.mu.Lock()
	var f Fault
	found := false
	for i := range c.faults {
		if c.faults[i].Token == token {
			f = c.faults[i]
			c.faults[i].Count--
			if c.faults[i].Count == 0 {
				c.faults = append(c.faults[:i], c.faults[i+1:]...)
			}
			found = true
			break
		}
	}
	c.mu.Unlock()
	if !found {
		return false
	}
	if f.Hang != nil {
		<-f.Hang
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Location != "" {
		w.Header().Set("Location", f.Location)
	}
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	ct := f.ContentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	switch {
	case f.Empty:
	case f.Body != "":
		_, _ = w.Write([]byte(f.Body))
	case f.Garbage:
		_, _ = w.Write([]byte(garbageBody))
	default:
		_, _ = w.Write([]byte(`{"error":"simulated fault"}`))
	}
	return true
}

// issue returns a new access token.
func (c *core) issue() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	t := hex.EncodeToString(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens[t] = true
	return t
}

// authorized checks the request's bearer token against the issued ones.
func (c *core) authorized(r *http.Request) bool {
	t, ok := bearer(r)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokens[t]
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	t := strings.TrimSpace(h[7:])
	return t, t != ""
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// unauthorized answers 401 with a vendor-neutral error body.
func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
}

// intParam reads a non-negative integer query parameter, def when absent,
// clamped to max when max > 0.
func intParam(r *http.Request, name string, def, max int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false
	}
	if max > 0 && n > max {
		n = max
	}
	return n, true
}

// lastOID is the oid of the last snapshot, or 0.
func lastOID(s []snapshot) uint64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].oid
}
