package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/oidctest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func newTestBearer(t *testing.T, iss *oidctest.Issuer, opts BearerOptions) *Bearer {
	t.Helper()
	opts.Issuer = iss.URL
	opts.Client = iss.Server.Client()
	if opts.Audiences == nil {
		opts.Audiences = []string{"riskgate"}
	}
	b, err := NewBearer(context.Background(), opts)
	require.NoError(t, err)
	return b
}

func authRequest(authorization string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://mail.test/", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	return r
}

func TestBearerNotMine(t *testing.T) {
	iss := oidctest.New(t)
	b := newTestBearer(t, iss, BearerOptions{})
	for _, h := range []string{"", "Basic YWxpY2U6c2VjcmV0", "Bearer", "Negotiate abc"} {
		t.Run(h, func(t *testing.T) {
			_, err := b.Authenticate(authRequest(h))
			assert.ErrorIs(t, err, ErrNoCredentials)
		})
	}
	_, err := b.Authenticate(authRequest("Bearer    "))
	assert.ErrorIs(t, err, ErrInvalidToken)
}

func TestBearerIdentity(t *testing.T) {
	iss := oidctest.New(t)
	tests := []struct {
		name   string
		opts   BearerOptions
		claims map[string]any
		want   Identity
		err    bool
	}{
		{name: "groups list", claims: map[string]any{"groups": []string{"staff", "mobile"}},
			want: Identity{User: alice, Email: alice, Groups: []string{"staff", "mobile"}}},
		{name: "groups string", claims: map[string]any{"groups": "staff"},
			want: Identity{User: alice, Email: alice, Groups: []string{"staff"}}},
		{name: "no groups", want: Identity{User: alice, Email: alice}},
		{name: "custom claims", opts: BearerOptions{UserClaim: "upn", GroupsClaim: "roles"},
			claims: map[string]any{"upn": "alice@upn.example", "roles": []any{"admin", 7, ""}},
			want:   Identity{User: "alice@upn.example", Email: alice, Groups: []string{"admin"}}},
		{name: "second of several audiences", opts: BearerOptions{Audiences: []string{"riskgate", "riskgate-api"}},
			claims: map[string]any{"aud": "riskgate-api"}, want: Identity{User: alice, Email: alice}},
		{name: "audience list", opts: BearerOptions{Audiences: []string{"riskgate", "riskgate-api"}},
			claims: map[string]any{"aud": []string{"other", "riskgate-api"}}, want: Identity{User: alice, Email: alice}},
		{name: "no accepted audience", opts: BearerOptions{Audiences: []string{"riskgate", "riskgate-api"}},
			claims: map[string]any{"aud": []string{"other"}}, err: true},
		{name: "single audience mismatch", claims: map[string]any{"aud": "riskgate-api"}, err: true},
		{name: "user claim missing", opts: BearerOptions{UserClaim: "upn"}, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBearer(t, iss, tc.opts)
			c := iss.Claims(alice, "riskgate")
			for k, v := range tc.claims {
				c[k] = v
			}
			id, err := b.Authenticate(authRequest("bearer " + iss.Sign(t, c)))
			if tc.err {
				assert.ErrorIs(t, err, ErrInvalidToken)
				assert.Nil(t, id)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want.User, id.User)
			assert.Equal(t, tc.want.Email, id.Email)
			assert.Equal(t, tc.want.Groups, id.Groups)
			assert.Equal(t, "bearer", id.Via)
			assert.Equal(t, c["sub"], id.Claims["sub"])
			assert.WithinDuration(t, time.Unix(c["exp"].(int64), 0), id.Expiry, 0)
		})
	}
}

func TestBearerCache(t *testing.T) {
	iss := oidctest.New(t)
	clk := &clock{t: time.Now()}
	b := newTestBearer(t, iss, BearerOptions{Now: clk.now, CacheSize: 2})
	c := iss.Claims(alice, "riskgate")
	c["exp"] = clk.now().Add(time.Minute).Unix()
	tok := iss.Sign(t, c)

	first, err := b.Authenticate(authRequest("Bearer " + tok))
	require.NoError(t, err)
	second, err := b.Authenticate(authRequest("Bearer " + tok))
	require.NoError(t, err)
	assert.Same(t, first, second, "the second request must be served from the cache")

	// Past the token's expiry the cached identity is not used.
	clk.set(time.Unix(c["exp"].(int64), 0).Add(time.Second))
	_, err = b.Authenticate(authRequest("Bearer " + tok))
	assert.ErrorIs(t, err, ErrInvalidToken)
	_, cached := b.cache.lru.Get(sha256.Sum256([]byte(tok)))
	assert.False(t, cached, "an expired entry is dropped")

	// A refused token is never cached.
	bad := iss.SignWithKey(t, iss.KeyID, iss.Claims(alice, "riskgate"))
	clk.set(time.Now())
	for range 2 {
		_, err = b.Authenticate(authRequest("Bearer " + bad))
		assert.ErrorIs(t, err, ErrInvalidToken)
	}
}

func TestTokenCacheExpiry(t *testing.T) {
	c, err := newTokenCache(4)
	require.NoError(t, err)
	now := time.Now()
	key := sha256.Sum256([]byte("t"))
	c.add(key, &Identity{User: alice, Expiry: now.Add(time.Second)})
	_, ok := c.get(key, now)
	assert.True(t, ok)
	_, ok = c.get(key, now.Add(time.Second))
	assert.False(t, ok, "an entry is not used at its expiry")
	_, ok = c.get(key, now)
	assert.False(t, ok, "an expired entry is removed")
}

func TestNewBearerErrors(t *testing.T) {
	iss := oidctest.New(t)
	tests := []struct {
		name string
		opts BearerOptions
	}{
		{"no issuer", BearerOptions{Audiences: []string{"a"}}},
		{"no audience", BearerOptions{Issuer: iss.URL}},
		{"unreachable issuer", BearerOptions{Issuer: "http://127.0.0.1:1", Audiences: []string{"a"}}},
		{"issuer mismatch", BearerOptions{Issuer: iss.URL + "/", Audiences: []string{"a"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewBearer(context.Background(), tc.opts)
			require.Error(t, err)
			assert.False(t, errors.Is(err, ErrInvalidToken))
		})
	}
}

// TestBearerUnknownKeyFlood sends 1,000 tokens naming random unknown key
// ids, from several goroutines: the identity provider sees at most one JWKS
// fetch per minimum interval, and good tokens keep working meanwhile.
func TestBearerUnknownKeyFlood(t *testing.T) {
	iss := oidctest.New(t)
	clk := &clock{t: time.Now()}
	b := newTestBearer(t, iss, BearerOptions{Now: clk.now, KeyRefreshMinInterval: time.Minute})
	claims := iss.Claims(alice, "riskgate")
	_, err := b.Authenticate(authRequest("Bearer " + iss.Sign(t, claims)))
	require.NoError(t, err)
	require.Equal(t, 1, iss.JWKSHits())
	// Past the interval, the first unknown kid may fetch once; no other may.
	clk.set(clk.now().Add(time.Minute))

	forger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	const n, workers = 1000, 8
	tokens := make(chan string, n)
	for range n {
		tokens <- signJWT(t, jose.ES256, forger, rand.Text(), claims)
	}
	close(tokens)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for tok := range tokens {
				_, err := b.Authenticate(authRequest("Bearer " + tok))
				assert.ErrorIs(t, err, ErrInvalidToken)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 2, iss.JWKSHits(), "1,000 unknown kids: one fetch")

	good := iss.Claims("bob@corp.example", "riskgate")
	_, err = b.Authenticate(authRequest("Bearer " + iss.Sign(t, good)))
	require.NoError(t, err, "the flood does not lock out good tokens")
	assert.Equal(t, 2, iss.JWKSHits())
}

func TestBearerKeyRotation(t *testing.T) {
	iss := oidctest.New(t)
	clk := &clock{t: time.Now()}
	b := newTestBearer(t, iss, BearerOptions{Now: clk.now, KeyRefreshMinInterval: 45 * time.Second})
	_, err := b.Authenticate(authRequest("Bearer " + iss.Sign(t, iss.Claims(alice, "riskgate"))))
	require.NoError(t, err)

	iss.Rotate(t, "test-key-2")
	rotated := iss.Sign(t, iss.Claims(alice, "riskgate"))
	clk.set(clk.now().Add(44 * time.Second))
	_, err = b.Authenticate(authRequest("Bearer " + rotated))
	assert.ErrorIs(t, err, ErrInvalidToken, "within the configured interval")
	clk.set(clk.now().Add(time.Second))
	id, err := b.Authenticate(authRequest("Bearer " + rotated))
	require.NoError(t, err, "after the configured interval")
	assert.Equal(t, alice, id.User)
	assert.Equal(t, 2, iss.JWKSHits())
}

func TestBearerRefusesNoneAndHMAC(t *testing.T) {
	iss := oidctest.New(t)
	b := newTestBearer(t, iss, BearerOptions{})
	claims := iss.Claims(alice, "riskgate")
	pubDER, err := x509.MarshalPKIXPublicKey(&iss.Key.PublicKey)
	require.NoError(t, err)
	tests := []struct{ name, token string }{
		{"alg none", iss.Unsigned(t, claims)},
		{"HS256 keyed with the public key", signJWT(t, jose.HS256, pubDER, iss.KeyID, claims)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := b.Authenticate(authRequest("Bearer " + tc.token))
			assert.ErrorIs(t, err, ErrInvalidToken)
			assert.Nil(t, id)
		})
	}
}
