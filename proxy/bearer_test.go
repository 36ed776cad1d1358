package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

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
