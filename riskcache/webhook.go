package riskcache

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Webhook limits.
const (
	// MaxWebhookBody is the largest accepted webhook body; larger gets 413.
	MaxWebhookBody = 1 << 20
	// WebhookTolerance is how far a signature's timestamp may be from now,
	// and how long a seen signature is remembered against replays.
	WebhookTolerance = 5 * time.Minute
	// DefaultMaxSeen bounds the remembered signatures.
	DefaultMaxSeen = 100000
	// WebhookPathPrefix is where the webhook is served; the vendor follows.
	WebhookPathPrefix = "/.riskgate/webhook/"
	// SignatureHeader carries "t=UNIX,v1=HEX".
	SignatureHeader = "X-Riskgate-Signature"
)

// Webhook results (label result of riskgate_webhook_events_total).
const (
	WebhookOK            = "ok"
	WebhookBadSignature  = "bad_signature"
	WebhookExpired       = "expired"
	WebhookReplay        = "replay"
	WebhookBadRequest    = "bad_request"
	WebhookTooLarge      = "too_large"
	WebhookUnknownVendor = "unknown_vendor"
	WebhookBusy          = "busy"
)

// WebhookOptions configure a Webhook.
type WebhookOptions struct {
	Cache *Cache
	// Secrets returns a vendor's webhook secret; ok is false (or the secret
	// empty) when the vendor has no webhook. Called per request, so a
	// configuration reload takes effect at once.
	Secrets func(vendor string) (secret string, ok bool)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics; nil records nothing.
	Metrics *Metrics
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// MaxSeen bounds the signatures remembered against replays; zero means
	// DefaultMaxSeen. When full, the oldest is forgotten.
	MaxSeen int
}

// Webhook serves POST /.riskgate/webhook/{vendor}: signed pushes of the
// generic API's device objects, applied to the cache before it answers.
type Webhook struct {
	cache   *Cache
	secrets func(string) (string, bool)
	now     func() time.Time
	metrics *Metrics
	log     *slog.Logger

	mu      sync.Mutex
	seen    map[string]int64 // signature -> unix expiry
	order   []seenSig        // insertion order, for expiry and the bound
	head    int              // order[:head] are forgotten
	maxSeen int
}

type seenSig struct {
	key    string
	expiry int64
}

// NewWebhook returns the webhook handler.
func NewWebhook(opts WebhookOptions) *Webhook {
	w := &Webhook{
		cache:   opts.Cache,
		secrets: opts.Secrets,
		now:     opts.Now,
		metrics: opts.Metrics,
		log:     opts.Logger,
		seen:    map[string]int64{},
		maxSeen: opts.MaxSeen,
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.maxSeen <= 0 {
		w.maxSeen = DefaultMaxSeen
	}
	w.metrics.AttachCache(w.cache)
	return w
}

// Sign returns the X-Riskgate-Signature value for body at t, as a vendor
// (or the demo simulator) computes it.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(signature(secret, ts, body))
}

func signature(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ServeHTTP handles one push. Every outcome is counted; nothing changes on
// any error.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	vendor := r.PathValue("vendor")
	if vendor == "" {
		vendor = strings.TrimPrefix(r.URL.Path, WebhookPathPrefix)
		if vendor == r.URL.Path || strings.Contains(vendor, "/") {
			vendor = ""
		}
	}
	secret, ok := "", false
	if vendor != "" && w.cache.HasVendor(vendor) && w.secrets != nil {
		secret, ok = w.secrets(vendor)
	}
	if !ok || secret == "" {
		w.fail(rw, "unknown", WebhookUnknownVendor, http.StatusNotFound, "unknown vendor")
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		w.fail(rw, vendor, WebhookBadRequest, http.StatusMethodNotAllowed, "method not allowed")
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxWebhookBody))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			w.fail(rw, vendor, WebhookTooLarge, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		w.fail(rw, vendor, WebhookBadRequest, http.StatusBadRequest, "cannot read body")
		return
	}

	ts, sigs, ok := parseSignature(r.Header.Get(SignatureHeader))
	if !ok {
		w.fail(rw, vendor, WebhookBadSignature, http.StatusUnauthorized, "missing or malformed signature")
		return
	}
	want := signature(secret, ts, body)
	var matched []byte
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			matched = s
			break
		}
	}
	if matched == nil {
		w.fail(rw, vendor, WebhookBadSignature, http.StatusUnauthorized, "bad signature")
		return
	}
	unix, _ := strconv.ParseInt(ts, 10, 64) // parseSignature checked it
	now := w.now()
	if d := now.Sub(time.Unix(unix, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		w.fail(rw, vendor, WebhookExpired, http.StatusUnauthorized, "signature timestamp out of range")
		return
	}

	page, err := ParsePage(bytes.NewReader(body), 0)
	if err != nil {
		w.log.Info("webhook: bad body", "vendor", vendor, "err", err)
		w.fail(rw, vendor, WebhookBadRequest, http.StatusBadRequest, "invalid JSON body")
		return
	}
	switch w.remember(vendor+":"+hex.EncodeToString(matched), unix+int64(WebhookTolerance/time.Second), now.Unix()) {
	case rememberReplay:
		w.fail(rw, vendor, WebhookReplay, http.StatusUnauthorized, "replayed signature")
		return
	case rememberFull:
		rw.Header().Set("Retry-After", "5")
		w.fail(rw, vendor, WebhookBusy, http.StatusServiceUnavailable, "too many webhook deliveries; retry later")
		return
	}
	n := w.cache.Apply(vendor, page.Reports)
	w.metrics.webhookEvent(vendor, WebhookOK)
	rw.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(rw, "{\"applied\":%d}\n", n)
}

func (w *Webhook) fail(rw http.ResponseWriter, vendor, result string, status int, msg string) {
	w.metrics.webhookEvent(vendor, result)
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	rw.WriteHeader(status)
	fmt.Fprintf(rw, "{\"error\":%q}\n", msg)
}

// parseSignature splits "t=UNIX,v1=HEX[,v1=HEX...]" (several v1 values
// allow a vendor to sign with an old and a new secret during rotation).
func parseSignature(h string) (ts string, sigs [][]byte, ok bool) {
	for part := range strings.SplitSeq(h, ",") {
		k, v, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			return "", nil, false
		}
		switch k {
		case "t":
			if _, err := strconv.ParseInt(v, 10, 64); err != nil || ts != "" {
				return "", nil, false
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return "", nil, false
			}
			sigs = append(sigs, b)
		}
	}
	return ts, sigs, ts != "" && len(sigs) > 0
}

// remember records key until expiry and reports whether it was new. Expired
// keys are dropped first; when the set is full the oldest goes.
// Outcomes of remember.
const (
	rememberOK = iota
	rememberReplay
	rememberFull
)

func (w *Webhook) remember(key string, expiry, now int64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.head < len(w.order) && w.order[w.head].expiry < now {
		if old := w.order[w.head]; w.seen[old.key] == old.expiry {
			delete(w.seen, old.key)
		}
		w.order[w.head] = seenSig{}
		w.head++
	}
	if w.head > len(w.order)/2 {
		// Compact; amortised O(1) per signature.
		n := copy(w.order, w.order[w.head:])
		clear(w.order[n:])
		w.order = w.order[:n]
		w.head = 0
	}
	if exp, ok := w.seen[key]; ok && exp >= now {
		return rememberReplay
	}
	if len(w.order)-w.head >= w.maxSeen {
		// Full of signatures still inside the window: forgetting one would
		// let it be replayed, so refuse (the vendor retries) rather than
		// forget.
		return rememberFull
	}
	w.seen[key] = expiry
	w.order = append(w.order, seenSig{key: key, expiry: expiry})
	return rememberOK
}
