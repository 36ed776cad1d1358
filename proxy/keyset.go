package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key set defaults.
const (
	// DefaultKeyRefreshMinInterval is the shortest time between two JWKS
	// fetches when BearerOptions.KeyRefreshMinInterval is zero.
	DefaultKeyRefreshMinInterval = 30 * time.Second
	// DefaultKeyRefreshInterval is how long fetched keys are used before
	// they are fetched again when BearerOptions.KeyRefreshInterval is zero.
	DefaultKeyRefreshInterval = time.Hour
	// DefaultKeyFetchTimeout bounds one JWKS fetch when
	// BearerOptions.KeyFetchTimeout is zero.
	DefaultKeyFetchTimeout = 10 * time.Second

	// maxJWKSBytes bounds the JWKS document read from the identity provider.
	maxJWKSBytes = 1 << 20
	// minRSABits is the smallest RSA key accepted (RFC 7518 section 3.3).
	minRSABits = 2048
)

// keySetAlgs are the accepted JWS algorithms: asymmetric only. "none" and
// HMAC are not among them, so an unsigned token, or one "signed" with a
// public key used as an HMAC secret, is refused before any key is looked at.
var keySetAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// KeySetOptions configure a KeySet.
type KeySetOptions struct {
	// URL is the identity provider's jwks_uri. Required.
	URL string
	// Client fetches the key set. Default http.DefaultClient.
	Client *http.Client
	// Now is the clock fetches are timed with. Default time.Now.
	Now func() time.Time
	// MinInterval is the shortest time between two fetches: a token naming
	// an unknown key id within it fails at once. Default
	// DefaultKeyRefreshMinInterval.
	MinInterval time.Duration
	// RefreshInterval is how long fetched keys are used before they are
	// fetched again, on the next use. Default DefaultKeyRefreshInterval.
	RefreshInterval time.Duration
	// Timeout bounds one fetch. Default DefaultKeyFetchTimeout.
	Timeout time.Duration
	// Logger reports failed fetches. Default: discard.
	Logger *slog.Logger
}

// KeySet verifies JWT signatures against an identity provider's JWKS
// (RFC 7517). It implements go-oidc's oidc.KeySet and is safe for
// concurrent use.
//
// Unlike go-oidc's RemoteKeySet, it does not fetch the JWKS again for every
// token naming a key it does not know: such fetches are at most one per
// MinInterval, so a flood of forged tokens cannot become a flood of
// requests to the identity provider. Keys are also fetched again after
// RefreshInterval, lazily. Concurrent fetches are merged into one, and a
// failed fetch keeps the last good keys.
type KeySet struct {
	url             string
	client          *http.Client
	now             func() time.Time
	minInterval     time.Duration
	refreshInterval time.Duration
	timeout         time.Duration
	logger          *slog.Logger

	mu        sync.Mutex
	keys      []jose.JSONWebKey // immutable once stored; replaced whole
	fetched   time.Time         // last successful fetch
	attempted time.Time         // last fetch started
	inflight  chan struct{}     // closed when the fetch in flight ends; nil if none
}

// NewKeySet returns a KeySet for the JWKS at opts.URL. It fetches nothing
// until the first signature is verified.
func NewKeySet(opts KeySetOptions) (*KeySet, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("proxy: keyset: jwks_uri %q is not an http(s) URL", opts.URL)
	}
	ks := &KeySet{
		url:             opts.URL,
		client:          opts.Client,
		now:             opts.Now,
		minInterval:     opts.MinInterval,
		refreshInterval: opts.RefreshInterval,
		timeout:         opts.Timeout,
		logger:          opts.Logger,
	}
	if ks.client == nil {
		ks.client = http.DefaultClient
	}
	if ks.now == nil {
		ks.now = time.Now
	}
	if ks.minInterval <= 0 {
		ks.minInterval = DefaultKeyRefreshMinInterval
	}
	if ks.refreshInterval <= 0 {
		ks.refreshInterval = DefaultKeyRefreshInterval
	}
	if ks.timeout <= 0 {
		ks.timeout = DefaultKeyFetchTimeout
	}
	if ks.logger == nil {
		ks.logger = slog.New(slog.DiscardHandler)
	}
	return ks, nil
}

// VerifySignature implements oidc.KeySet: it checks the signature of a
// compact JWS and returns its payload. The key is chosen by the "kid"
// header; a token without one is tried against every key.
func (ks *KeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, keySetAlgs)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("jwks: want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID

	keys, _ := ks.load(ctx, false)
	payload, known, err := verifyWith(jws, keys, kid)
	if err == nil {
		return payload, nil
	}
	if known {
		// The key is ours and the signature does not match it: fetching
		// again would not help (a key id names one key).
		return nil, err
	}
	// An unknown key id, or no key id and no key verifies: perhaps the
	// provider rotated its keys. Fetch again, unless that was done less
	// than MinInterval ago.
	keys, fetched := ks.load(ctx, true)
	if !fetched {
		return nil, unknownKeyError(kid)
	}
	payload, known, err = verifyWith(jws, keys, kid)
	if err == nil {
		return payload, nil
	}
	if !known {
		return nil, unknownKeyError(kid)
	}
	return nil, err
}

func unknownKeyError(kid string) error {
	if kid == "" {
		return errors.New("jwks: no key verifies the token")
	}
	return fmt.Errorf("jwks: key id %q not in the key set", kid)
}

// verifyWith checks jws against the keys named kid (all keys when kid is
// empty). known says whether there was any key to check against.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, known bool, err error) {
	alg := jws.Signatures[0].Header.Algorithm
	for i := range keys {
		k := &keys[i]
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		known = true
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, true, nil
		}
	}
	if !known {
		return nil, false, unknownKeyError(kid)
	}
	return nil, true, errors.New("jwks: signature does not match the key")
}

// load returns the cached keys, fetching them first when there are none,
// when they are older than the refresh interval, or when unknown is set
// (the caller met a key it does not know), provided no fetch started less
// than the minimum interval ago. A fetch already in flight is joined
// rather than repeated. fetched says whether a fetch ended during the call.
func (ks *KeySet) load(ctx context.Context, unknown bool) (keys []jose.JSONWebKey, fetched bool) {
	ks.mu.Lock()
	now := ks.now()
	stale := ks.fetched.IsZero() || !now.Before(ks.fetched.Add(ks.refreshInterval))
	if !unknown && !stale {
		keys = ks.keys
		ks.mu.Unlock()
		return keys, false
	}
	if done := ks.inflight; done != nil {
		keys = ks.keys
		ks.mu.Unlock()
		if !unknown && len(keys) > 0 {
			// A periodic refresh is under way; the current keys still serve.
			return keys, false
		}
		select {
		case <-done:
		case <-ctx.Done():
			return keys, false
		}
		ks.mu.Lock()
		defer ks.mu.Unlock()
		return ks.keys, true
	}
	if !ks.attempted.IsZero() && now.Before(ks.attempted.Add(ks.minInterval)) {
		keys = ks.keys
		ks.mu.Unlock()
		return keys, false
	}
	ks.attempted = now
	done := make(chan struct{})
	ks.inflight = done
	ks.mu.Unlock()

	// The fetch is shared with the requests that join it: the caller's
	// cancellation must not fail theirs, so only the timeout bounds it.
	fresh, err := ks.fetch(context.WithoutCancel(ctx))

	ks.mu.Lock()
	defer ks.mu.Unlock()
	if err != nil {
		// Logged here, not returned: the caller's token error is about the
		// token; this one is about the identity provider.
		ks.logger.Warn("jwks fetch failed; keeping the last good keys",
			"url", ks.url, "keys", len(ks.keys), "err", err)
	} else {
		ks.keys = fresh
		ks.fetched = ks.now()
	}
	ks.inflight = nil
	close(done)
	return ks.keys, true
}

// fetch downloads the JWKS and keeps its usable signing keys.
func (ks *KeySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, ks.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return nil, fmt.Errorf("proxy: keyset: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("proxy: keyset: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("proxy: keyset: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy: keyset: %s", resp.Status)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("proxy: keyset: larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}

// parseJWKS reads a JWKS document and returns its asymmetric signing keys
// (public halves only). Keys of other kinds, or that do not parse, are
// skipped rather than failing the set, so that one key of a type this
// program does not know cannot lock out all the others.
func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("proxy: keyset: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && !slices.Contains(keySetAlgs, jose.SignatureAlgorithm(k.Algorithm)) {
			continue
		}
		k = k.Public() // an empty key for symmetric ("oct") keys
		switch pub := k.Key.(type) {
		case *rsa.PublicKey:
			if pub.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("proxy: keyset: no usable signing key among %d", len(doc.Keys))
	}
	return keys, nil
}
