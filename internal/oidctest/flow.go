package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Client is an OAuth client registered with the issuer for the
// authorization code flow.
type Client struct {
	ID     string
	Secret string
	// RedirectURIs are the exact redirect_uri values accepted.
	RedirectURIs []string
}

// Logout records one visit to the end_session_endpoint.
type Logout struct {
	ClientID              string
	IDTokenHint           string
	PostLogoutRedirectURI string
	State                 string
}

// flow is the issuer's authorization code state. The handlers run on the
// server's goroutines, so everything is behind mu.
type flow struct {
	mu          sync.Mutex
	clients     map[string]Client
	users       map[string]map[string]any // login_hint -> extra claims
	defaultUser string
	codes       map[string]*grant
	tokens      map[string]map[string]any // access token -> userinfo claims
	logouts     []Logout
	// idTokenClaims, when set, edits the claims of every ID token issued
	// (tests that need a wrong audience, an expired token, ...).
	idTokenClaims func(map[string]any)
}

// grant is an issued authorization code.
type grant struct {
	clientID, redirectURI string
	challenge, nonce      string
	user                  string
	used                  bool
	expires               time.Time
}

// AddClient registers a client for the authorization code flow.
func (iss *Issuer) AddClient(c Client) {
	iss.flow.mu.Lock()
	defer iss.flow.mu.Unlock()
	iss.flow.clients[c.ID] = c
}

// AddUser registers a user the authorization endpoint signs in
// (auto-approving) when login_hint names it, or always when it is the first
// or default user. extra claims (groups, name, a device id ...) are added to
// the standard ones of Claims in the ID token and the userinfo answer.
func (iss *Issuer) AddUser(user string, extra map[string]any) {
	iss.flow.mu.Lock()
	defer iss.flow.mu.Unlock()
	iss.flow.users[user] = maps.Clone(extra)
	if iss.flow.defaultUser == "" {
		iss.flow.defaultUser = user
	}
}

// SetDefaultUser makes user the one signed in without a login_hint.
func (iss *Issuer) SetDefaultUser(user string) {
	iss.flow.mu.Lock()
	defer iss.flow.mu.Unlock()
	iss.flow.defaultUser = user
}

// EditIDTokens makes edit change the claims of every ID token issued from
// now on (nil: stop editing).
func (iss *Issuer) EditIDTokens(edit func(claims map[string]any)) {
	iss.flow.mu.Lock()
	defer iss.flow.mu.Unlock()
	iss.flow.idTokenClaims = edit
}

// Logouts returns the visits to the end_session_endpoint so far.
func (iss *Issuer) Logouts() []Logout {
	iss.flow.mu.Lock()
	defer iss.flow.mu.Unlock()
	return slices.Clone(iss.flow.logouts)
}

func newFlow() *flow {
	return &flow{
		clients: map[string]Client{},
		users:   map[string]map[string]any{},
		codes:   map[string]*grant{},
		tokens:  map[string]map[string]any{},
	}
}

func (iss *Issuer) registerFlow(mux *http.ServeMux) {
	mux.HandleFunc("GET /authorize", iss.authorize)
	mux.HandleFunc("POST /token", iss.token)
	mux.HandleFunc("GET /userinfo", iss.userinfo)
	mux.HandleFunc("GET /logout", iss.endSession)
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authorize is the authorization endpoint (OpenID Connect Core 3.1.2). It
// approves at once: no login form. It requires PKCE with S256 (RFC 7636).
// Errors that cannot be sent back to a verified redirect_uri are a 400.
func (iss *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := iss.flow
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.clients[q.Get("client_id")]
	if !ok {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !slices.Contains(c.RedirectURIs, redirectURI) {
		http.Error(w, "redirect_uri not registered", http.StatusBadRequest)
		return
	}
	back := func(params url.Values) {
		u, _ := url.Parse(redirectURI)
		v := u.Query()
		for k, vs := range params {
			v[k] = vs
		}
		if s := q.Get("state"); s != "" {
			v.Set("state", s)
		}
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	switch {
	case q.Get("response_type") != "code":
		back(url.Values{"error": {"unsupported_response_type"}})
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		back(url.Values{"error": {"invalid_request"}, "error_description": {"PKCE with S256 is required"}})
		return
	}
	user := q.Get("login_hint")
	if user == "" {
		user = f.defaultUser
	}
	if _, ok := f.users[user]; !ok {
		back(url.Values{"error": {"access_denied"}, "error_description": {"unknown user"}})
		return
	}
	code := randomString()
	f.codes[code] = &grant{
		clientID: c.ID, redirectURI: redirectURI,
		challenge: q.Get("code_challenge"), nonce: q.Get("nonce"),
		user: user, expires: time.Now().Add(time.Minute),
	}
	back(url.Values{"code": {code}})
}

// token is the token endpoint for the authorization_code grant (RFC 6749
// 4.1.3, RFC 7636 4.6): client authentication (basic or post), a one-time
// code, the same redirect_uri and the PKCE verifier are all checked.
func (iss *Issuer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	f := iss.flow
	f.mu.Lock()
	c, ok := f.clients[id]
	if !ok || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		f.mu.Unlock()
		tokenError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		f.mu.Unlock()
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	g, ok := f.codes[r.PostForm.Get("code")]
	if !ok || g.used || time.Now().After(g.expires) || g.clientID != c.ID ||
		g.redirectURI != r.PostForm.Get("redirect_uri") {
		if ok {
			g.used = true // RFC 6749 4.1.2: a code works once, even a misused one
		}
		f.mu.Unlock()
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	g.used = true
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		f.mu.Unlock()
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	claims := iss.Claims(g.user, c.ID)
	maps.Copy(claims, f.users[g.user])
	userinfo := maps.Clone(claims)
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	if f.idTokenClaims != nil {
		f.idTokenClaims(claims)
	}
	access := randomString()
	f.tokens[access] = userinfo
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   3600,
		"id_token":     iss.sign(claims),
	})
}

func tokenError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// userinfo is the UserInfo endpoint (OpenID Connect Core 5.3).
func (iss *Issuer) userinfo(w http.ResponseWriter, r *http.Request) {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	iss.flow.mu.Lock()
	claims, ok := iss.flow.tokens[h[min(len(h), len(prefix)):]]
	iss.flow.mu.Unlock()
	if len(h) <= len(prefix) || !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(claims)
}

// endSession is the end_session_endpoint (OpenID Connect RP-Initiated
// Logout 1.0): it records the visit and redirects to
// post_logout_redirect_uri when given.
func (iss *Issuer) endSession(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	l := Logout{
		ClientID: q.Get("client_id"), IDTokenHint: q.Get("id_token_hint"),
		PostLogoutRedirectURI: q.Get("post_logout_redirect_uri"), State: q.Get("state"),
	}
	iss.flow.mu.Lock()
	iss.flow.logouts = append(iss.flow.logouts, l)
	iss.flow.mu.Unlock()
	if l.PostLogoutRedirectURI == "" {
		_, _ = w.Write([]byte("signed out\n"))
		return
	}
	http.Redirect(w, r, l.PostLogoutRedirectURI, http.StatusFound)
}
