package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/proxy"
	"github.com/riskgate/riskgate/riskcache"
)

// gateway is a running riskgate: the risk cache and its syncers, the proxy
// and everything a configuration change rebuilds. apply swaps in a new
// configuration; the old one keeps serving when the new one fails to build.
type gateway struct {
	logger    *slog.Logger
	now       func() time.Time
	client    *http.Client // to the identity provider and the vendors
	cache     *riskcache.Cache
	riskM     *riskcache.Metrics
	proxyM    *proxy.Metrics
	syncers   *syncers
	webhook   *riskcache.Webhook
	proxy     *proxy.Proxy
	transport http.RoundTripper

	mu      sync.Mutex // serialises apply
	cfg     atomic.Pointer[policy.Config]
	auth    *authState
	signIn  *loginState
	login   atomic.Pointer[proxy.Login]
	started *policy.Config // the config at start: its server section and cache settings stay until a restart
}

// authState is what an auth section builds: the bearer verifier and the
// session codec. It is reused by reloads that do not change the section,
// so a reload does not repeat discovery or drop verified tokens.
type authState struct {
	cfg      policy.Auth
	bearer   *proxy.Bearer
	sessions *proxy.Sessions // nil: browser sign-in is off
	// sessionAuth keeps its cache of opened cookies across reloads.
	sessionAuth *proxy.SessionAuthenticator
}

// loginState is the sign-in handler and what it was built from besides the
// auth section: the claims it keeps in the session and the branding of its
// pages.
type loginState struct {
	auth     *authState
	claims   []string
	branding policy.Branding
	login    *proxy.Login
}

// deviceClaims are the token claims the device sources read.
func deviceClaims(cfg *policy.Config) []string {
	var claims []string
	for _, s := range cfg.Devices.Sources {
		if s.Claim != "" {
			claims = append(claims, s.Claim)
		}
	}
	return claims
}

func newGateway(logger *slog.Logger, reg prometheus.Registerer, cfg *policy.Config, now func() time.Time) *gateway {
	g := &gateway{
		logger: logger,
		now:    now,
		client: &http.Client{Timeout: 60 * time.Second},
		riskM:  riskcache.NewMetrics(reg),
		proxyM: proxy.NewMetrics(reg),
		transport: proxy.NewTransport(proxy.TransportOptions{
			UpstreamTimeout: cfg.Server.UpstreamTimeout.Duration,
		}),
		started: cfg,
	}
	g.cache = riskcache.New(riskcache.Options{
		Size:    cfg.Risk.CacheSize,
		MaxAge:  cfg.Risk.MaxAge.Duration,
		Now:     now,
		Vendors: vendorNames(cfg.Risk.Vendors),
	})
	g.riskM.AttachCache(g.cache)
	g.syncers = newSyncers(logger, g.cache, g.riskM, g.client, now)
	g.webhook = riskcache.NewWebhook(riskcache.WebhookOptions{
		Cache:   g.cache,
		Secrets: g.webhookSecret,
		Now:     now,
		Metrics: g.riskM,
		Logger:  logger,
	})
	g.proxy = proxy.New(proxy.Options{
		Logger:   logger,
		Now:      now,
		Risk:     g.cache,
		Reserved: http.HandlerFunc(g.serveReserved),
		Webhook:  g.webhook,
	})
	return g
}

func vendorNames(vs []policy.Vendor) []string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Name
	}
	return names
}

// webhookSecret looks a vendor's webhook secret up in the config in force.
func (g *gateway) webhookSecret(vendor string) (string, bool) {
	cfg := g.cfg.Load()
	if cfg == nil {
		return "", false
	}
	for _, v := range cfg.Risk.Vendors {
		if v.Name == vendor && v.WebhookSecret != "" {
			return v.WebhookSecret, true
		}
	}
	return "", false
}

// serveReserved sends /.riskgate/login, callback and logout to the login
// handler of the config in force.
func (g *gateway) serveReserved(w http.ResponseWriter, r *http.Request) {
	l := g.login.Load()
	if l == nil {
		http.NotFound(w, r)
		return
	}
	l.ServeHTTP(w, r)
}

// apply builds everything a configuration needs and swaps it in. On error
// nothing changes.
func (g *gateway) apply(ctx context.Context, cfg *policy.Config, set *policy.Set) error {
	g.mu.Lock()
	defer g.mu.Unlock()

	if g.cfg.Load() != nil {
		running, next := g.started.Server, cfg.Server
		running.BodyIdleTimeout = next.BodyIdleTimeout // applied live, by the snapshot
		if !reflect.DeepEqual(running, next) {
			g.logger.Warn("config: changes to server.listen, admin_listen, tls, shutdown_timeout and upstream_timeout need a restart; the running ones stay in force")
		}
		if s, c := g.started.Risk, cfg.Risk; s.CacheSize != c.CacheSize || s.StateFile != c.StateFile || s.StateInterval != c.StateInterval {
			g.logger.Warn("config: changes to risk.cache_size, risk.state_file and risk.state_interval need a restart; the running ones stay in force")
		}
	}
	pages, err := proxy.NewPages(cfg.Branding)
	if err != nil {
		return fmt.Errorf("branding: %w", err)
	}
	auth := g.auth
	if auth == nil || !reflect.DeepEqual(auth.cfg, cfg.Auth) {
		if auth, err = g.buildAuth(ctx, cfg.Auth); err != nil {
			return err
		}
	}
	signIn := g.signIn
	if claims := deviceClaims(cfg); signIn == nil || signIn.auth != auth ||
		!slices.Equal(signIn.claims, claims) || !reflect.DeepEqual(signIn.branding, cfg.Branding) {
		if signIn, err = g.buildLogin(ctx, auth, claims, cfg.Branding, pages); err != nil {
			return err
		}
	}
	snap, err := proxy.NewSnapshot(proxy.SnapshotOptions{
		Policy:         set,
		Authenticators: auth.authenticators(),
		NoLogin:        signIn.login == nil,
		Pages:          pages,
		Metrics:        g.proxyM,
		Transport:      g.transport,
		Logger:         g.logger,
	})
	if err != nil {
		return err
	}
	// Nothing can fail from here on: swap everything in.
	g.auth, g.signIn = auth, signIn
	g.login.Store(signIn.login)
	g.cfg.Store(cfg)
	g.cache.SetMaxAge(cfg.Risk.MaxAge.Duration)
	g.cache.SetVendors(vendorNames(cfg.Risk.Vendors))
	g.syncers.Update(cfg.Risk.Vendors)
	g.proxy.Store(snap)
	return nil
}

// buildAuth builds the bearer verifier and, when browser sign-in is on, the
// session codec. Discovery at the identity provider is retried for a while
// so that riskgate and its IdP can start together.
func (g *gateway) buildAuth(ctx context.Context, a policy.Auth) (*authState, error) {
	var (
		bearer *proxy.Bearer
		err    error
	)
	deadline := time.Now().Add(30 * time.Second)
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		bearer, err = proxy.NewBearer(ctx, proxy.BearerOptions{
			Issuer:      a.Issuer,
			Audiences:   a.Audiences,
			UserClaim:   a.UserClaim,
			GroupsClaim: a.GroupsClaim,
			Client:      g.client,
			Now:         g.now,
			Logger:      g.logger,
		})
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		g.logger.Warn("identity provider discovery failed; retrying", "issuer", a.Issuer, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	st := &authState{cfg: a, bearer: bearer}
	// Browser sign-in needs a callback URL and a session secret; without
	// them riskgate serves bearer tokens only and browsers get 401.
	if a.RedirectURL == "" || a.Session.Secret == "" {
		g.logger.Warn("browser sign-in disabled: set auth.redirect_url and auth.session.secret to enable it; bearer tokens only")
		return st, nil
	}
	if st.sessions, err = proxy.NewSessions(a, g.now); err != nil {
		return nil, fmt.Errorf("auth.session: %w", err)
	}
	st.sessionAuth = proxy.NewSessionAuthenticator(st.sessions)
	return st, nil
}

// buildLogin builds the sign-in handler, or none when sign-in is off.
func (g *gateway) buildLogin(ctx context.Context, auth *authState, claims []string, b policy.Branding, pages *proxy.Pages) (*loginState, error) {
	st := &loginState{auth: auth, claims: claims, branding: b}
	if auth.sessions == nil {
		return st, nil
	}
	login, err := proxy.NewLogin(ctx, proxy.LoginOptions{
		Auth:         auth.cfg,
		Client:       g.client,
		Now:          g.now,
		Logger:       g.logger,
		Sessions:     auth.sessions,
		Pages:        pages,
		DeviceClaims: claims,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: login: %w", err)
	}
	st.login = login
	return st, nil
}

// authenticators are tried in order: bearer tokens, then the session
// cookie when browser sign-in is on.
func (a *authState) authenticators() []proxy.Authenticator {
	list := []proxy.Authenticator{a.bearer}
	if a.sessionAuth != nil {
		list = append(list, a.sessionAuth)
	}
	return list
}

// ready is /readyz: a config is in force and every vendor has synced once
// or been restored from the state file.
func (g *gateway) ready() error {
	if g.cfg.Load() == nil {
		return errors.New("no configuration loaded")
	}
	if !g.cache.Ready() {
		return errors.New("waiting for the first sync of every vendor")
	}
	return nil
}
