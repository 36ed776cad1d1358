package proxy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/riskgate/riskgate/policy"
)

// Cookie defaults and limits.
const (
	// DefaultSessionCookie is the session cookie's name when
	// auth.session.cookie_name is empty.
	DefaultSessionCookie = "_riskgate"
	// DefaultSessionTTL is the session lifetime when auth.session.ttl is zero.
	DefaultSessionTTL = 8 * time.Hour
	// MinSessionSecret is the shortest accepted auth.session.secret, in bytes.
	MinSessionSecret = 16
	// maxCookieBytes bounds a Set-Cookie value (name, value and attributes):
	// RFC 6265 section 6.1 only promises 4096 bytes per cookie.
	maxCookieBytes = 4096

	// The HKDF info strings give each cookie kind its own key, so that one
	// kind can never be opened as another (RFC 5869 section 3.2).
	sessionKeyInfo = "riskgate session cookie v1"
	flowKeyInfo    = "riskgate login flow cookie v1"

	// sealVersion is the first byte of every sealed value; it is also
	// authenticated, so a future format cannot be confused with this one.
	sealVersion = 1
)

// ErrSessionTooLarge means the session does not fit in one cookie, almost
// always because the user is in too many groups. Login fails with a clear
// page rather than dropping groups: a truncated group list could drop a
// group that an exclusion or a stricter policy depends on.
var ErrSessionTooLarge = errors.New("proxy: session too large for a cookie")

// cookieCodec seals and opens cookie values with AES-256-GCM. Keys are
// derived from the configured secrets with HKDF-SHA256; the first key seals,
// every key opens (secret rotation).
type cookieCodec struct {
	aeads []cipher.AEAD
}

func newCookieCodec(secrets []string, info string) (*cookieCodec, error) {
	c := &cookieCodec{}
	for i, s := range secrets {
		if len(s) < MinSessionSecret {
			return nil, fmt.Errorf("secret %d is %d bytes, want at least %d", i, len(s), MinSessionSecret)
		}
		key, err := hkdf.Key(sha256.New, []byte(s), nil, info, 32)
		if err != nil {
			return nil, fmt.Errorf("derive key: %w", err)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("derive key: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("derive key: %w", err)
		}
		c.aeads = append(c.aeads, aead)
	}
	if len(c.aeads) == 0 {
		return nil, errors.New("no secret")
	}
	return c, nil
}

// seal encrypts plaintext for the cookie called name. The name is
// authenticated data: a value cannot be moved to another cookie.
func (c *cookieCodec) seal(name string, plaintext []byte) string {
	aead := c.aeads[0]
	buf := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	buf[0] = sealVersion
	_, _ = rand.Read(buf[1:]) // crypto/rand.Read never fails (Go 1.24+)
	nonce := buf[1:]
	out := aead.Seal(buf, nonce, plaintext, additionalData(name))
	return base64.RawURLEncoding.EncodeToString(out)
}

// open decrypts a value sealed by seal with any of the keys.
func (c *cookieCodec) open(name, value string) ([]byte, bool) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(value)
	if err != nil || len(raw) < 1 || raw[0] != sealVersion {
		return nil, false
	}
	ad := additionalData(name)
	for _, aead := range c.aeads {
		if len(raw) < 1+aead.NonceSize()+aead.Overhead() {
			return nil, false
		}
		nonce, ct := raw[1:1+aead.NonceSize()], raw[1+aead.NonceSize():]
		if pt, err := aead.Open(nil, nonce, ct, ad); err == nil {
			return pt, true
		}
	}
	return nil, false
}

func additionalData(name string) []byte {
	return append([]byte{sealVersion}, name...)
}

// Session is what the session cookie holds: who signed in, and until when.
type Session struct {
	// User is the value of auth.user_claim; Email the "email" claim.
	User   string
	Email  string
	Groups []string
	// Claims holds the device id claims (devices.sources[].claim) found in
	// the ID token, so that a session identifies the device as a bearer
	// token would.
	Claims map[string]string
	// IDTokenExpiry is the ID token's "exp" (informational: the session
	// lives for auth.session.ttl).
	IDTokenExpiry time.Time
	// IssuedAt is when the user signed in; Expiry when the session ends.
	IssuedAt time.Time
	Expiry   time.Time
}

// sessionPayload is the compact JSON form of a Session.
type sessionPayload struct {
	U string            `json:"u"`
	E string            `json:"e,omitempty"`
	G []string          `json:"g,omitempty"`
	C map[string]string `json:"c,omitempty"`
	X int64             `json:"x,omitempty"`
	I int64             `json:"i"`
	S int64             `json:"s"`
}

// Sessions seals, opens, sets and clears the browser session cookie.
// Sessions live entirely in the cookie (encrypted and authenticated), so any
// replica with the same secret serves any user.
type Sessions struct {
	name         string
	ttl          time.Duration
	secureAlways bool
	codec        *cookieCodec
	now          func() time.Time
}

// NewSessions builds the session cookie codec from auth.session:
// Session.Secret seals and opens, Session.Secrets (older secrets) only open.
// Cookies are marked Secure when auth.redirect_url is https or when the
// request itself came over TLS. now is the clock expiry is checked against.
func NewSessions(a policy.Auth, now func() time.Time) (*Sessions, error) {
	if now == nil {
		now = time.Now
	}
	secrets := append([]string{a.Session.Secret}, a.Session.Secrets...)
	codec, err := newCookieCodec(secrets, sessionKeyInfo)
	if err != nil {
		return nil, fmt.Errorf("proxy: session: %w", err)
	}
	s := &Sessions{
		name:  a.Session.CookieName,
		ttl:   a.Session.TTL.Duration,
		codec: codec,
		now:   now,
	}
	if s.name == "" {
		s.name = DefaultSessionCookie
	}
	if s.ttl <= 0 {
		s.ttl = DefaultSessionTTL
	}
	if u, err := url.Parse(a.RedirectURL); err == nil && strings.EqualFold(u.Scheme, "https") {
		s.secureAlways = true
	}
	return s, nil
}

// CookieName is the session cookie's name.
func (s *Sessions) CookieName() string { return s.name }

// TTL is the session lifetime.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// secure says whether cookies set in answer to r get the Secure attribute.
func (s *Sessions) secure(r *http.Request) bool {
	return s.secureAlways || r.TLS != nil
}

// Encode seals sess into a cookie value. It returns ErrSessionTooLarge when
// the resulting Set-Cookie would exceed 4096 bytes.
func (s *Sessions) Encode(sess *Session) (string, error) {
	p := sessionPayload{
		U: sess.User, E: sess.Email, G: sess.Groups, C: sess.Claims,
		I: sess.IssuedAt.Unix(), S: sess.Expiry.Unix(),
	}
	if !sess.IDTokenExpiry.IsZero() {
		p.X = sess.IDTokenExpiry.Unix()
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("proxy: session: %w", err)
	}
	v := s.codec.seal(s.name, b)
	c := s.cookie(v, int(s.ttl/time.Second), true)
	if n := len(c.String()); n > maxCookieBytes {
		return "", fmt.Errorf("%w: %d bytes with %d groups", ErrSessionTooLarge, n, len(sess.Groups))
	}
	return v, nil
}

// Decode opens a cookie value. Anything that does not open with one of the
// keys, does not parse, or has expired by the injected clock is
// ErrNoCredentials: the browser is simply signed out.
func (s *Sessions) Decode(value string) (*Session, error) {
	b, ok := s.codec.open(s.name, value)
	if !ok {
		return nil, ErrNoCredentials
	}
	var p sessionPayload
	if err := json.Unmarshal(b, &p); err != nil || p.U == "" {
		return nil, ErrNoCredentials
	}
	sess := &Session{
		User: p.U, Email: p.E, Groups: p.G, Claims: p.C,
		IssuedAt: time.Unix(p.I, 0), Expiry: time.Unix(p.S, 0),
	}
	if p.X != 0 {
		sess.IDTokenExpiry = time.Unix(p.X, 0)
	}
	// A shorter ttl in a reloaded config also ends older sessions.
	if limit := sess.IssuedAt.Add(s.ttl); limit.Before(sess.Expiry) {
		sess.Expiry = limit
	}
	if !s.now().Before(sess.Expiry) {
		return nil, ErrNoCredentials
	}
	return sess, nil
}

// NewSession starts a session for the signed-in user, issued now and
// ending after the ttl.
func (s *Sessions) NewSession(user, email string, groups []string) *Session {
	now := s.now()
	return &Session{User: user, Email: email, Groups: groups, IssuedAt: now, Expiry: now.Add(s.ttl)}
}

// Set seals sess and sets the session cookie on w. It returns
// ErrSessionTooLarge (and sets nothing) when the session does not fit.
func (s *Sessions) Set(w http.ResponseWriter, r *http.Request, sess *Session) error {
	v, err := s.Encode(sess)
	if err != nil {
		return err
	}
	maxAge := int(sess.Expiry.Sub(s.now()) / time.Second)
	if maxAge <= 0 {
		return fmt.Errorf("proxy: session: already expired")
	}
	http.SetCookie(w, s.cookie(v, maxAge, s.secure(r)))
	return nil
}

// Load returns the request's session, or ErrNoCredentials when it has none
// that is valid.
func (s *Sessions) Load(r *http.Request) (*Session, error) {
	c, err := r.Cookie(s.name)
	if err != nil || c.Value == "" {
		return nil, ErrNoCredentials
	}
	return s.Decode(c.Value)
}

// Clear deletes the session cookie.
func (s *Sessions) Clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, s.cookie("", -1, s.secure(r)))
}

// StripCookie removes the session cookie from r's Cookie headers, so that
// it is never forwarded upstream. Other cookies are kept as sent.
func (s *Sessions) StripCookie(r *http.Request) {
	stripCookies(r, func(name string) bool { return name == s.name })
}

func (s *Sessions) cookie(value string, maxAge int, secure bool) *http.Cookie {
	return &http.Cookie{
		Name: s.name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode,
	}
}

// stripCookies rewrites r's Cookie headers without the cookies drop selects.
func stripCookies(r *http.Request, drop func(name string) bool) {
	lines := r.Header.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var kept []string
	changed := false
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			p := strings.TrimSpace(part)
			if p == "" {
				continue
			}
			name, _, _ := strings.Cut(p, "=")
			if drop(strings.TrimSpace(name)) {
				changed = true
				continue
			}
			kept = append(kept, p)
		}
	}
	if !changed {
		return
	}
	r.Header.Del("Cookie")
	if len(kept) > 0 {
		r.Header.Set("Cookie", strings.Join(kept, "; "))
	}
}

// sessionCacheSize bounds the sessions a SessionAuthenticator remembers.
const sessionCacheSize = 10000

// SessionAuthenticator authenticates browsers by their session cookie.
// Opened sessions are remembered by the SHA-256 of the whole cookie value,
// so a browser sending the same cookie on every request pays for AES-GCM
// and JSON once; any other value, a tampered one included, misses and is
// opened (and refused) as usual. A remembered session is never used at or
// after its expiry, checked on every request against the Sessions' clock.
// It is safe for concurrent use.
type SessionAuthenticator struct {
	sessions *Sessions
	cache    *tokenCache
}

// NewSessionAuthenticator returns the Authenticator for session cookies.
func NewSessionAuthenticator(s *Sessions) *SessionAuthenticator {
	cache, err := newTokenCache(sessionCacheSize)
	if err != nil {
		// Unreachable: the size is a positive constant.
		panic(fmt.Sprintf("proxy: session cache: %v", err))
	}
	return &SessionAuthenticator{sessions: s, cache: cache}
}

// Authenticate returns the identity in the session cookie. A request
// without a cookie, or with a tampered, expired or foreign one, gets
// ErrNoCredentials: it is signed out, never an error. The identity may be
// shared with other requests carrying the same cookie and must not be
// modified.
func (a *SessionAuthenticator) Authenticate(r *http.Request) (*Identity, error) {
	c, err := r.Cookie(a.sessions.name)
	if err != nil || c.Value == "" {
		return nil, ErrNoCredentials
	}
	key := sha256.Sum256([]byte(c.Value))
	if id, ok := a.cache.get(key, a.sessions.now()); ok {
		return id, nil
	}
	sess, err := a.sessions.Decode(c.Value)
	if err != nil {
		return nil, err
	}
	id := &Identity{
		User:   sess.User,
		Email:  sess.Email,
		Groups: sess.Groups,
		Expiry: sess.Expiry,
		Via:    "session",
	}
	if len(sess.Claims) > 0 {
		id.Claims = make(map[string]any, len(sess.Claims))
		for k, v := range sess.Claims {
			id.Claims[k] = v
		}
	}
	a.cache.add(key, id)
	return id, nil
}
