package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// ErrInvalidToken means the request carried a bearer token that failed
// verification (bad signature, unknown key, wrong issuer or audience,
// expired, malformed). Such a request gets 401 with error="invalid_token"
// (RFC 6750 section 3.1) and is never forwarded.
var ErrInvalidToken = errors.New("proxy: invalid bearer token")

// BearerOptions configure a Bearer authenticator.
type BearerOptions struct {
	// Issuer is the OIDC issuer URL; its discovery document and JWKS are
	// fetched from it. Required.
	Issuer string
	// Audiences are the accepted "aud" values; a token must name at least
	// one of them. Required.
	Audiences []string
	// UserClaim names the claim identifying the user. Default "email".
	UserClaim string
	// GroupsClaim names the claim with the user's groups, a list of strings
	// or a single string. Default "groups".
	GroupsClaim string
	// Client fetches discovery and keys. Default http.DefaultClient.
	Client *http.Client
	// Now is the clock for expiry checks. Default time.Now.
	Now func() time.Time
	// CacheSize bounds the number of verified tokens remembered. Default
	// 10000.
	CacheSize int
	// KeyRefreshMinInterval is the shortest time between two fetches of
	// the issuer's JWKS: a token naming an unknown key id triggers at most
	// one fetch per interval, and fails at once within it. Default
	// DefaultKeyRefreshMinInterval (30s).
	KeyRefreshMinInterval time.Duration
	// KeyRefreshInterval is how long fetched keys are used before they are
	// fetched again, on the next token. Default DefaultKeyRefreshInterval
	// (1h).
	KeyRefreshInterval time.Duration
	// KeyFetchTimeout bounds one JWKS fetch. Default
	// DefaultKeyFetchTimeout (10s).
	KeyFetchTimeout time.Duration
	// Logger reports failed JWKS fetches. Default: discard.
	Logger *slog.Logger
}

// Bearer authenticates "Authorization: Bearer <JWT>" requests with tokens
// signed by the OIDC issuer (RFC 6750). It is safe for concurrent use.
type Bearer struct {
	verifier    *oidc.IDTokenVerifier
	audiences   []string
	userClaim   string
	groupsClaim string
	now         func() time.Time
	cache       *tokenCache
}

// signingAlgs are the accepted JWS algorithms; "none" and HMAC are not
// among them, so an unsigned or symmetric-key token never verifies.
func signingAlgs() []string {
	return []string{
		oidc.RS256, oidc.RS384, oidc.RS512,
		oidc.ES256, oidc.ES384, oidc.ES512,
		oidc.PS256, oidc.PS384, oidc.PS512,
		oidc.EdDSA,
	}
}

// NewBearer fetches the issuer's discovery document and returns a Bearer
// that verifies tokens against its JWKS (see KeySet). Keys are fetched on
// first use, again after KeyRefreshInterval, and when a token names a key id
// not seen before (key rotation), at most once per KeyRefreshMinInterval.
func NewBearer(ctx context.Context, opts BearerOptions) (*Bearer, error) {
	if opts.Issuer == "" {
		return nil, errors.New("proxy: bearer: issuer is required")
	}
	if len(opts.Audiences) == 0 {
		return nil, errors.New("proxy: bearer: at least one audience is required")
	}
	if opts.UserClaim == "" {
		opts.UserClaim = "email"
	}
	if opts.GroupsClaim == "" {
		opts.GroupsClaim = "groups"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.Client != nil {
		ctx = oidc.ClientContext(ctx, opts.Client)
	}
	provider, err := oidc.NewProvider(ctx, opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("proxy: bearer: discovery: %w", err)
	}
	var discovery struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := provider.Claims(&discovery); err != nil {
		return nil, fmt.Errorf("proxy: bearer: discovery: %w", err)
	}
	keys, err := NewKeySet(KeySetOptions{
		URL:             discovery.JWKSURL,
		Client:          opts.Client,
		Now:             opts.Now,
		MinInterval:     opts.KeyRefreshMinInterval,
		RefreshInterval: opts.KeyRefreshInterval,
		Timeout:         opts.KeyFetchTimeout,
		Logger:          opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: bearer: discovery: %w", err)
	}
	cache, err := newTokenCache(opts.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("proxy: bearer: %w", err)
	}
	cfg := &oidc.Config{
		SupportedSigningAlgs: signingAlgs(),
		Now:                  opts.Now,
	}
	if len(opts.Audiences) == 1 {
		cfg.ClientID = opts.Audiences[0]
	} else {
		// Several audiences: go-oidc checks one; Authenticate checks them all.
		cfg.SkipClientIDCheck = true
	}
	return &Bearer{
		verifier:    oidc.NewVerifier(opts.Issuer, keys, cfg),
		audiences:   slices.Clone(opts.Audiences),
		userClaim:   opts.UserClaim,
		groupsClaim: opts.GroupsClaim,
		now:         opts.Now,
		cache:       cache,
	}, nil
}

// Authenticate implements Authenticator. A request without an
// Authorization header, or with another scheme, is not the Bearer's: it
// returns ErrNoCredentials. A bad token returns an error wrapping
// ErrInvalidToken.
func (b *Bearer) Authenticate(r *http.Request) (*Identity, error) {
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return nil, ErrNoCredentials
	}
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrInvalidToken)
	}
	key := sha256.Sum256([]byte(token))
	now := b.now()
	if id, ok := b.cache.get(key, now); ok {
		return id, nil
	}
	id, err := b.verify(r.Context(), token)
	if err != nil {
		return nil, err
	}
	if now.Before(id.Expiry) {
		b.cache.add(key, id)
	}
	return id, nil
}

// bearerToken extracts the token of an "Authorization: Bearer" header. The
// scheme is case-insensitive (RFC 7235 section 2.1).
func bearerToken(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

func (b *Bearer) verify(ctx context.Context, token string) (*Identity, error) {
	t, err := b.verifier.Verify(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if !slices.ContainsFunc(t.Audience, func(a string) bool { return slices.Contains(b.audiences, a) }) {
		return nil, fmt.Errorf("%w: audience %q not accepted", ErrInvalidToken, t.Audience)
	}
	var claims map[string]any
	if err := t.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrInvalidToken, err)
	}
	user, _ := claims[b.userClaim].(string)
	if user == "" {
		return nil, fmt.Errorf("%w: no %q claim", ErrInvalidToken, b.userClaim)
	}
	email, _ := claims["email"].(string)
	// As at the browser sign-in: an unverified address must not name the
	// user (anyone can type one into a self-service IdP account).
	if emailUnverified(claims) {
		if b.userClaim == "email" {
			return nil, fmt.Errorf("%w: email is not verified", ErrInvalidToken)
		}
		email = ""
	}
	return &Identity{
		User:   user,
		Email:  email,
		Groups: groupsOf(claims[b.groupsClaim]),
		Claims: claims,
		Expiry: t.Expiry,
		Via:    "bearer",
	}, nil
}

// groupsOf reads a groups claim that is a list of strings or one string.
func groupsOf(v any) []string {
	switch g := v.(type) {
	case string:
		if g == "" {
			return nil
		}
		return []string{g}
	case []any:
		groups := make([]string, 0, len(g))
		for _, e := range g {
			if s, ok := e.(string); ok && s != "" {
				groups = append(groups, s)
			}
		}
		return groups
	}
	return nil
}

// emailUnverified reports whether claims say the email is not verified:
// email_verified false, or "false" as some identity providers (Cognito)
// send it. An absent claim is not a refusal.
func emailUnverified(claims map[string]any) bool {
	switch v := claims["email_verified"].(type) {
	case bool:
		return !v
	case string:
		return strings.EqualFold(v, "false")
	}
	return false
}
