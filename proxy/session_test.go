package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
)

// testClock is a settable clock, safe for the test servers' goroutines.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testSecret = "0123456789abcdef0123456789abcdef"

func testAuth(secret string, old ...string) policy.Auth {
	return policy.Auth{
		ClientID:    "riskgate",
		RedirectURL: "http://mail.corp.example/.riskgate/callback",
		Session: policy.Session{
			Secret: secret, Secrets: old,
			TTL: policy.Duration{Duration: 8 * time.Hour},
		},
	}
}

func newTestSessions(t *testing.T, clock *testClock, secret string, old ...string) *Sessions {
	t.Helper()
	s, err := NewSessions(testAuth(secret, old...), clock.Now)
	require.NoError(t, err)
	return s
}

// setCookie runs Sessions.Set and returns the cookie it set.
func setCookie(t *testing.T, s *Sessions, r *http.Request, sess *Session) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	require.NoError(t, s.Set(rec, r, sess))
	cookies := rec.Result().Cookies()
	require.Len(t, cookies, 1)
	return cookies[0]
}

func requestWith(c *http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://mail.corp.example/", nil)
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestSessionRoundTripAndCookieFlags(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, clock, testSecret)
	sess := s.NewSession("alice@corp.example", "alice@corp.example", []string{"staff", "mail-users"})
	sess.Claims = map[string]string{"deviceid": "d-1"}
	sess.IDTokenExpiry = clock.Now().Add(time.Hour).Truncate(time.Second)

	c := setCookie(t, s, requestWith(nil), sess)
	assert.Equal(t, "_riskgate", c.Name)
	assert.True(t, c.HttpOnly)
	assert.False(t, c.Secure, "plain http request and http redirect_url")
	assert.Equal(t, http.SameSiteLaxMode, c.SameSite)
	assert.Equal(t, "/", c.Path)
	assert.Equal(t, 8*3600, c.MaxAge)
	assert.NotContains(t, c.Value, "alice", "the cookie is encrypted")

	id, err := NewSessionAuthenticator(s).Authenticate(requestWith(c))
	require.NoError(t, err)
	assert.Equal(t, "alice@corp.example", id.User)
	assert.Equal(t, "alice@corp.example", id.Email)
	assert.Equal(t, []string{"staff", "mail-users"}, id.Groups)
	assert.Equal(t, map[string]any{"deviceid": "d-1"}, id.Claims)
	assert.Equal(t, "session", id.Via)
	assert.Equal(t, sess.Expiry.Unix(), id.Expiry.Unix())

	got, err := s.Load(requestWith(c))
	require.NoError(t, err)
	assert.Equal(t, sess.IDTokenExpiry.Unix(), got.IDTokenExpiry.Unix())
	assert.Equal(t, sess.IssuedAt.Unix(), got.IssuedAt.Unix())
}

func TestSessionSecureFlag(t *testing.T) {
	clock := newTestClock()
	plain := newTestSessions(t, clock, testSecret)
	tlsReq := requestWith(nil)
	tlsReq.TLS = &tls.ConnectionState{}
	assert.True(t, setCookie(t, plain, tlsReq, plain.NewSession("u", "", nil)).Secure, "request over TLS")

	a := testAuth(testSecret)
	a.RedirectURL = "https://mail.corp.example/.riskgate/callback"
	https, err := NewSessions(a, clock.Now)
	require.NoError(t, err)
	assert.True(t, setCookie(t, https, requestWith(nil), https.NewSession("u", "", nil)).Secure, "https redirect_url behind a TLS-terminating front")

	rec := httptest.NewRecorder()
	https.Clear(rec, requestWith(nil))
	cleared := rec.Result().Cookies()
	require.Len(t, cleared, 1)
	assert.Equal(t, "_riskgate", cleared[0].Name)
	assert.Negative(t, cleared[0].MaxAge)
	assert.True(t, cleared[0].Secure)
}

func TestSessionSignedOut(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, clock, testSecret)
	good := setCookie(t, s, requestWith(nil), s.NewSession("alice", "", []string{"g"}))
	foreign := newTestSessions(t, clock, "another-secret-another-secret!!")
	foreignCookie := setCookie(t, foreign, requestWith(nil), foreign.NewSession("mallory", "", nil))

	flip := func(v string, i int) string {
		b := []byte(v)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name  string
		value string
	}{
		{"tampered ciphertext", flip(good.Value, len(good.Value)/2)},
		{"tampered tag", flip(good.Value, len(good.Value)-1)},
		{"tampered nonce", flip(good.Value, 3)},
		{"truncated", good.Value[:len(good.Value)-10]},
		{"too short", good.Value[:8]},
		{"not base64", "!!!" + good.Value},
		{"empty", ""},
		{"plain JSON", `{"u":"admin","i":0,"s":99999999999}`},
		{"foreign key", foreignCookie.Value},
	}
	a := NewSessionAuthenticator(s)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Authenticate(requestWith(&http.Cookie{Name: "_riskgate", Value: tc.value}))
			assert.ErrorIs(t, err, ErrNoCredentials)
			assert.Nil(t, id)
		})
	}
	t.Run("no cookie", func(t *testing.T) {
		_, err := a.Authenticate(requestWith(nil))
		assert.ErrorIs(t, err, ErrNoCredentials)
	})
	t.Run("moved to another cookie name", func(t *testing.T) {
		a2 := testAuth(testSecret)
		a2.Session.CookieName = "_other"
		other, err := NewSessions(a2, clock.Now)
		require.NoError(t, err)
		_, err = other.Load(requestWith(&http.Cookie{Name: "_other", Value: good.Value}))
		assert.ErrorIs(t, err, ErrNoCredentials, "the cookie name is authenticated")
	})
	t.Run("flow cookie key cannot open sessions", func(t *testing.T) {
		flow, err := newCookieCodec([]string{testSecret}, flowKeyInfo)
		require.NoError(t, err)
		v := flow.seal("_riskgate", []byte(`{"u":"admin","i":0,"s":99999999999}`))
		_, err = a.Authenticate(requestWith(&http.Cookie{Name: "_riskgate", Value: v}))
		assert.ErrorIs(t, err, ErrNoCredentials)
	})
}

func TestSessionExpiry(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, clock, testSecret)
	c := setCookie(t, s, requestWith(nil), s.NewSession("alice", "", nil))
	a := NewSessionAuthenticator(s)

	clock.Advance(8*time.Hour - time.Second)
	_, err := a.Authenticate(requestWith(c))
	require.NoError(t, err, "one second before the ttl")

	clock.Advance(time.Second)
	_, err = a.Authenticate(requestWith(c))
	assert.ErrorIs(t, err, ErrNoCredentials, "at the ttl")

	t.Run("shorter ttl after a reload ends older sessions", func(t *testing.T) {
		clock := newTestClock()
		s := newTestSessions(t, clock, testSecret)
		c := setCookie(t, s, requestWith(nil), s.NewSession("alice", "", nil))
		a := testAuth(testSecret)
		a.Session.TTL.Duration = time.Hour
		short, err := NewSessions(a, clock.Now)
		require.NoError(t, err)
		clock.Advance(time.Hour + time.Second)
		_, err = short.Load(requestWith(c))
		assert.ErrorIs(t, err, ErrNoCredentials)
		_, err = s.Load(requestWith(c))
		assert.NoError(t, err)
	})
}

func TestSessionRotation(t *testing.T) {
	clock := newTestClock()
	const oldSecret = "old-secret-old-secret-old-secret"
	before := newTestSessions(t, clock, oldSecret)
	oldCookie := setCookie(t, before, requestWith(nil), before.NewSession("alice", "", []string{"staff"}))

	after := newTestSessions(t, clock, testSecret, oldSecret)
	id, err := NewSessionAuthenticator(after).Authenticate(requestWith(oldCookie))
	require.NoError(t, err, "a cookie sealed with an old secret still opens")
	assert.Equal(t, "alice", id.User)

	newCookie := setCookie(t, after, requestWith(nil), after.NewSession("bob", "", nil))
	_, err = before.Load(requestWith(newCookie))
	assert.ErrorIs(t, err, ErrNoCredentials, "the first secret seals: old replicas cannot open new cookies")
	onlyNew := newTestSessions(t, clock, testSecret)
	_, err = onlyNew.Load(requestWith(newCookie))
	assert.NoError(t, err)
	_, err = onlyNew.Load(requestWith(oldCookie))
	assert.ErrorIs(t, err, ErrNoCredentials, "a retired secret opens nothing")
}

func TestSessionTooLarge(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, clock, testSecret)
	groups := make([]string, 0, 200)
	for i := range 200 {
		groups = append(groups, fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
	}
	rec := httptest.NewRecorder()
	err := s.Set(rec, requestWith(nil), s.NewSession("alice", "", groups))
	require.ErrorIs(t, err, ErrSessionTooLarge)
	assert.Empty(t, rec.Result().Cookies(), "nothing is set, no group is silently dropped")

	// The largest session that fits still makes a cookie under 4096 bytes.
	for n := len(groups); n > 0; n-- {
		rec := httptest.NewRecorder()
		if err := s.Set(rec, requestWith(nil), s.NewSession("alice", "", groups[:n])); err == nil {
			line := rec.Result().Header.Get("Set-Cookie")
			assert.LessOrEqual(t, len(line), 4096)
			assert.Greater(t, n, 50, "a realistic number of group ids fits")
			return
		}
	}
	t.Fatal("no session fits")
}

func TestNewSessionsRefusesWeakSecrets(t *testing.T) {
	_, err := NewSessions(testAuth(""), time.Now)
	assert.Error(t, err)
	_, err = NewSessions(testAuth("short"), time.Now)
	assert.Error(t, err)
	_, err = NewSessions(testAuth(testSecret, "short"), time.Now)
	assert.Error(t, err, "old secrets too")
}

func TestStripCookie(t *testing.T) {
	s := newTestSessions(t, newTestClock(), testSecret)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Add("Cookie", "a=1; _riskgate=secret; b=2")
	r.Header.Add("Cookie", "_riskgate=again")
	s.StripCookie(r)
	assert.Equal(t, []string{"a=1; b=2"}, r.Header.Values("Cookie"))

	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "_riskgate=x")
	s.StripCookie(r)
	assert.Empty(t, r.Header.Values("Cookie"))

	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "_riskgate_other=x;  c=3")
	s.StripCookie(r)
	assert.Equal(t, "_riskgate_other=x;  c=3", r.Header.Get("Cookie"), "untouched when ours is absent")
	assert.False(t, strings.Contains(r.Header.Get("Cookie"), "_riskgate="))
}

func TestSessionAuthenticatorCache(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, clock, testSecret)
	good := setCookie(t, s, requestWith(nil), s.NewSession("alice", "alice@corp.example", []string{"staff"}))
	a := NewSessionAuthenticator(s)

	first, err := a.Authenticate(requestWith(good))
	require.NoError(t, err)
	second, err := a.Authenticate(requestWith(good))
	require.NoError(t, err)
	assert.Same(t, first, second, "the same cookie is served from the cache")
	assert.Equal(t, 1, a.cache.lru.Len())

	t.Run("tampered cookies never hit the cache", func(t *testing.T) {
		for i := range len(good.Value) {
			b := []byte(good.Value)
			b[i] ^= 1 // stays in the base64url alphabet or breaks it: either way a different value
			id, err := a.Authenticate(requestWith(&http.Cookie{Name: "_riskgate", Value: string(b)}))
			if !assert.ErrorIs(t, err, ErrNoCredentials, "byte %d", i) {
				return
			}
			assert.Nil(t, id)
		}
		for _, v := range []string{good.Value[:len(good.Value)-1], good.Value + "A", good.Value[1:]} {
			_, err := a.Authenticate(requestWith(&http.Cookie{Name: "_riskgate", Value: v}))
			assert.ErrorIs(t, err, ErrNoCredentials)
		}
		assert.Equal(t, 1, a.cache.lru.Len(), "refused cookies are not remembered")
	})

	t.Run("another cookie of the same user is its own entry", func(t *testing.T) {
		other := setCookie(t, s, requestWith(nil), s.NewSession("alice", "alice@corp.example", []string{"staff"}))
		id, err := a.Authenticate(requestWith(other))
		require.NoError(t, err)
		assert.NotSame(t, first, id)
		assert.Equal(t, 2, a.cache.lru.Len())
	})

	t.Run("never used at or after the expiry", func(t *testing.T) {
		clock.Advance(8*time.Hour - time.Second)
		id, err := a.Authenticate(requestWith(good))
		require.NoError(t, err)
		assert.Same(t, first, id)
		clock.Advance(time.Second)
		_, err = a.Authenticate(requestWith(good))
		assert.ErrorIs(t, err, ErrNoCredentials, "at the expiry, though cached")
		_, cached := a.cache.lru.Get(sha256.Sum256([]byte(good.Value)))
		assert.False(t, cached, "the expired entry is dropped")
	})
}

func TestSessionAuthenticatorConcurrent(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, clock, testSecret)
	cookies := make([]*http.Cookie, 4)
	for i := range cookies {
		cookies[i] = setCookie(t, s, requestWith(nil), s.NewSession(fmt.Sprintf("user%d", i), "", nil))
	}
	a := NewSessionAuthenticator(s)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				c := cookies[(w+i)%len(cookies)]
				id, err := a.Authenticate(requestWith(c))
				if assert.NoError(t, err) {
					assert.Equal(t, fmt.Sprintf("user%d", (w+i)%len(cookies)), id.User)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, len(cookies), a.cache.lru.Len())
}

func BenchmarkSessionAuthenticate(b *testing.B) {
	s, err := NewSessions(testAuth(testSecret), time.Now)
	require.NoError(b, err)
	rec := httptest.NewRecorder()
	require.NoError(b, s.Set(rec, requestWith(nil), s.NewSession("alice@corp.example", "alice@corp.example",
		[]string{"staff", "mail-users", "vpn"})))
	r := requestWith(rec.Result().Cookies()[0])
	a := NewSessionAuthenticator(s)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}
