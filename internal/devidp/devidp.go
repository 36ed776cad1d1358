// Package devidp is a development OpenID Connect issuer for `riskgate demo`
// and local testing. It is FOR DEVELOPMENT ONLY: there are no passwords (the
// login page lets anyone pick one of the configured demo users), the signing
// key is generated at start and lost at exit, and nothing is persisted.
//
// It is nonetheless a real OIDC provider, so that riskgate talks to it exactly
// as it talks to a production identity provider: discovery
// (OpenID Connect Discovery 1.0), a JWKS, the authorization code flow with
// mandatory PKCE S256 (RFC 7636), client authentication with
// client_secret_basic or client_secret_post (RFC 6749 section 2.3.1), RS256
// ID tokens, userinfo, and RP-initiated logout (OpenID Connect RP-Initiated
// Logout 1.0) to registered post-logout redirect URIs only.
package devidp

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// User is a demo user that can be picked on the login page.
type User struct {
	// Email identifies the user; it is the "email" claim and must be unique.
	Email string
	// Name is the "name" claim.
	Name string
	// Groups is the "groups" claim.
	Groups []string
	// DeviceID is the user's demo device id, issued as the "deviceid" claim.
	// Empty means the claim is left out.
	DeviceID string
}

// Client is a registered OAuth 2.0 client (a relying party such as riskgate).
type Client struct {
	// ID is the client_id, also the "aud" of the ID tokens it gets.
	ID string
	// Secret is the client_secret.
	Secret string
	// RedirectURIs are the allowed redirect_uri values, compared exactly
	// (RFC 6749 section 3.1.2.3; OAuth 2.0 Security BCP).
	RedirectURIs []string
	// PostLogoutRedirectURIs are the allowed post_logout_redirect_uri values of
	// the end_session_endpoint, compared exactly. Empty means the client can
	// log out but never be redirected back.
	PostLogoutRedirectURIs []string
}

// Options configure a Server.
type Options struct {
	// Issuer is the public base URL of the issuer, the "iss" claim, e.g.
	// http://127.0.0.1:5556. A path is allowed: the handler then serves under
	// it. Required.
	Issuer string
	// Users are the demo users offered on the login page. At least one.
	Users []User
	// Clients are the registered clients. At least one.
	Clients []Client
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger logs every login, token and refusal. Nil discards.
	Logger *slog.Logger
	// TokenTTL is the lifetime of the ID and access tokens from /token.
	// Zero means one hour.
	TokenTTL time.Duration
}

// codeTTL is how long an authorization code can be redeemed; RFC 6749
// section 4.1.2 recommends at most ten minutes, a browser needs a few seconds.
const codeTTL = 60 * time.Second

// maxPendingCodes bounds the memory taken by unredeemed codes.
const maxPendingCodes = 10000

// Server is the development issuer; it is an http.Handler.
type Server struct {
	issuer   string // without trailing slash
	users    []User
	byEmail  map[string]User
	clients  map[string]Client
	now      func() time.Time
	log      *slog.Logger
	tokenTTL time.Duration

	key    *rsa.PrivateKey
	keyID  string
	signer jose.Signer
	pages  *template.Template
	mux    *http.ServeMux

	mu    sync.Mutex
	codes map[string]codeGrant
}

// New builds a Server with a fresh 2048-bit RSA signing key.
func New(opts Options) (*Server, error) {
	issuer := strings.TrimSuffix(opts.Issuer, "/")
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("devidp: issuer %q: want an absolute http(s) URL without query or fragment", opts.Issuer)
	}
	s := &Server{
		issuer:   issuer,
		byEmail:  make(map[string]User, len(opts.Users)),
		clients:  make(map[string]Client, len(opts.Clients)),
		now:      opts.Now,
		log:      opts.Logger,
		tokenTTL: opts.TokenTTL,
		codes:    make(map[string]codeGrant),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.tokenTTL <= 0 {
		s.tokenTTL = time.Hour
	}
	if len(opts.Users) == 0 {
		return nil, errors.New("devidp: no users")
	}
	for _, usr := range opts.Users {
		key := strings.ToLower(usr.Email)
		if key == "" {
			return nil, errors.New("devidp: user without email")
		}
		if _, dup := s.byEmail[key]; dup {
			return nil, fmt.Errorf("devidp: duplicate user %q", usr.Email)
		}
		usr.Groups = append([]string(nil), usr.Groups...)
		s.byEmail[key] = usr
		s.users = append(s.users, usr)
	}
	if len(opts.Clients) == 0 {
		return nil, errors.New("devidp: no clients")
	}
	for _, c := range opts.Clients {
		if c.ID == "" || c.Secret == "" {
			return nil, fmt.Errorf("devidp: client %q: id and secret are required", c.ID)
		}
		if _, dup := s.clients[c.ID]; dup {
			return nil, fmt.Errorf("devidp: duplicate client %q", c.ID)
		}
		if len(c.RedirectURIs) == 0 {
			return nil, fmt.Errorf("devidp: client %q: no redirect uris", c.ID)
		}
		for _, list := range [][]string{c.RedirectURIs, c.PostLogoutRedirectURIs} {
			for _, r := range list {
				ru, err := url.Parse(r)
				if err != nil || !ru.IsAbs() || ru.Fragment != "" {
					return nil, fmt.Errorf("devidp: client %q: redirect uri %q: want an absolute URL without fragment", c.ID, r)
				}
			}
		}
		c.RedirectURIs = append([]string(nil), c.RedirectURIs...)
		c.PostLogoutRedirectURIs = append([]string(nil), c.PostLogoutRedirectURIs...)
		s.clients[c.ID] = c
	}

	s.key, err = rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: generate key: %w", err)
	}
	thumb, err := (&jose.JSONWebKey{Key: &s.key.PublicKey}).Thumbprint(cryptoSHA256)
	if err != nil {
		return nil, fmt.Errorf("devidp: key thumbprint: %w", err)
	}
	s.keyID = b64(thumb[:12])
	s.signer, err = jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: s.key, KeyID: s.keyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("devidp: signer: %w", err)
	}
	s.pages, err = parsePages()
	if err != nil {
		return nil, fmt.Errorf("devidp: templates: %w", err)
	}

	base := strings.TrimSuffix(u.Path, "/")
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+base+"/{$}", s.home)
	mux.HandleFunc("GET "+base+"/.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET "+base+"/jwks", s.jwks)
	mux.HandleFunc("GET "+base+"/authorize", s.authorizePage)
	mux.HandleFunc("POST "+base+"/authorize", s.authorizeSubmit)
	mux.HandleFunc("POST "+base+"/token", s.token)
	mux.HandleFunc("GET "+base+"/userinfo", s.userinfo)
	mux.HandleFunc("POST "+base+"/userinfo", s.userinfo)
	mux.HandleFunc("GET "+base+"/logout", s.logout)
	mux.HandleFunc("POST "+base+"/logout", s.logout)
	s.mux = mux
	return s, nil
}

// ServeHTTP serves the issuer's endpoints under the issuer URL's path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Devidp", "development only, not for production")
	s.mux.ServeHTTP(w, r)
}

// Issuer returns the issuer URL, the "iss" of every token.
func (s *Server) Issuer() string { return s.issuer }

// Users returns a copy of the demo users, in the configured order.
func (s *Server) Users() []User {
	out := make([]User, len(s.users))
	for i, u := range s.users {
		u.Groups = append([]string(nil), u.Groups...)
		out[i] = u
	}
	return out
}

func (s *Server) endpoint(p string) string { return s.issuer + p }

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.issuer,
		"authorization_endpoint":                s.endpoint("/authorize"),
		"token_endpoint":                        s.endpoint("/token"),
		"jwks_uri":                              s.endpoint("/jwks"),
		"userinfo_endpoint":                     s.endpoint("/userinfo"),
		"end_session_endpoint":                  s.endpoint("/logout"),
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile", "groups"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      []string{"S256"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
			"email", "email_verified", "name", "groups", "deviceid"},
	})
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &s.key.PublicKey, KeyID: s.keyID, Algorithm: string(jose.RS256), Use: "sig"},
	}})
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "home", map[string]any{
		"Issuer": s.issuer,
		"Users":  s.users,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
