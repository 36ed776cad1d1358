package proxy

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/riskgate/riskgate/policy"
)

// The reserved browser sign-in paths (DESIGN.md "Reserved paths").
const (
	LoginPath    = "/.riskgate/login"
	CallbackPath = "/.riskgate/callback"
	LogoutPath   = "/.riskgate/logout"
)

const (
	// flowCookiePrefix names the login flow cookies; the state's first
	// characters complete the name, so that sign-ins started in two tabs
	// do not overwrite each other.
	flowCookiePrefix = "_riskgate_flow_"
	flowCookiePath   = "/.riskgate/"
	// flowTTL bounds how long a user may take at the identity provider.
	flowTTL = 10 * time.Minute

	// logoutKeyInfo is the HKDF info of the key that makes sign-out CSRF
	// tokens (see sessions.go for the cookie keys).
	logoutKeyInfo = "riskgate logout csrf v1"
	// maxLogoutForm bounds the body of a sign-out POST (a token and a
	// return URL of at most maxRedirectLen).
	maxLogoutForm = 16 << 10
)

// LoginOptions configure the browser sign-in handler.
type LoginOptions struct {
	// Auth is the auth section: issuer, client, redirect_url, scopes and
	// claims; its session secrets also key the login flow cookie.
	Auth policy.Auth
	// Client makes every request to the identity provider (discovery,
	// token, JWKS, userinfo). Nil: http.DefaultClient.
	Client *http.Client
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// Logger logs failed sign-ins. Nil: discard.
	Logger *slog.Logger
	// Sessions sets the session cookie. Required.
	Sessions *Sessions
	// Pages renders error pages. Nil: the built-in pages, unbranded.
	Pages *Pages
	// Provider is the discovered issuer, when the caller already has one
	// (the bearer authenticator's). Nil: NewLogin runs discovery.
	Provider *oidc.Provider
	// DeviceClaims are ID token claims kept in the session because a
	// device source reads them (devices.sources[].claim).
	DeviceClaims []string
	// UserInfo also asks the userinfo endpoint for the user, email and
	// groups claims the ID token lacks.
	UserInfo bool
	// PostLogoutRedirectURL is sent to the end_session_endpoint as
	// post_logout_redirect_uri. Empty: the origin of auth.redirect_url
	// followed by the logout's rd path.
	PostLogoutRedirectURL string
	// RequestID returns the request's id for error pages. Nil: the
	// X-Request-Id response header set by the request id middleware.
	RequestID func(w http.ResponseWriter, r *http.Request) string
}

// Login is the http.Handler for /.riskgate/login, /.riskgate/callback and
// /.riskgate/logout: the OpenID Connect authorization code flow with PKCE
// (RFC 7636, S256), state and nonce.
type Login struct {
	opts       LoginOptions
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	provider   *oidc.Provider
	endSession string
	origin     string // scheme://host of the redirect_url
	flow       *cookieCodec
	csrfKeys   [][]byte // the first makes tokens, every one checks them
	formTarget []string // where a sign-out POST is redirected (CSP form-action)
	now        func() time.Time
	logger     *slog.Logger
	pages      *Pages
	userClaim  string
	groupClaim string
}

// NewLogin discovers the issuer (unless opts.Provider is set) and returns
// the sign-in handler. It starts no goroutine.
func NewLogin(ctx context.Context, opts LoginOptions) (*Login, error) {
	a := opts.Auth
	if opts.Sessions == nil {
		return nil, errors.New("proxy: login: no sessions")
	}
	if a.ClientID == "" {
		return nil, errors.New("proxy: login: auth.client_id is empty")
	}
	ru, err := url.Parse(a.RedirectURL)
	if err != nil || (ru.Scheme != "https" && ru.Scheme != "http") || ru.Host == "" {
		return nil, fmt.Errorf("proxy: login: auth.redirect_url %q is not an absolute http(s) URL", a.RedirectURL)
	}
	if opts.Client == nil {
		opts.Client = http.DefaultClient
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pages := opts.Pages
	if pages == nil {
		if pages, err = NewPages(policy.Branding{}); err != nil {
			return nil, err
		}
	}
	provider := opts.Provider
	if provider == nil {
		provider, err = oidc.NewProvider(oidc.ClientContext(ctx, opts.Client), a.Issuer)
		if err != nil {
			return nil, fmt.Errorf("proxy: login: discovery: %w", err)
		}
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	// A provider built from a ProviderConfig has no discovery document:
	// then there is no end_session_endpoint either.
	_ = provider.Claims(&extra)
	flow, err := newCookieCodec(append([]string{a.Session.Secret}, a.Session.Secrets...), flowKeyInfo)
	if err != nil {
		return nil, fmt.Errorf("proxy: login: %w", err)
	}
	var csrfKeys [][]byte
	for _, secret := range append([]string{a.Session.Secret}, a.Session.Secrets...) {
		k, err := hkdf.Key(sha256.New, []byte(secret), nil, logoutKeyInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("proxy: login: derive key: %w", err)
		}
		csrfKeys = append(csrfKeys, k)
	}
	scopes := a.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	l := &Login{
		opts: opts,
		oauth: oauth2.Config{
			ClientID: a.ClientID, ClientSecret: a.ClientSecret,
			Endpoint: provider.Endpoint(), RedirectURL: a.RedirectURL, Scopes: scopes,
		},
		verifier:   provider.Verifier(&oidc.Config{ClientID: a.ClientID, Now: opts.Now}),
		provider:   provider,
		endSession: extra.EndSession,
		origin:     ru.Scheme + "://" + ru.Host,
		flow:       flow,
		csrfKeys:   csrfKeys,
		now:        opts.Now,
		logger:     opts.Logger,
		pages:      pages,
		userClaim:  a.UserClaim,
		groupClaim: a.GroupsClaim,
	}
	if l.endSession != "" {
		post := opts.PostLogoutRedirectURL
		if post == "" {
			post = l.origin
		}
		l.formTarget = []string{l.endSession, post}
	}
	if l.userClaim == "" {
		l.userClaim = "email"
	}
	if l.groupClaim == "" {
		l.groupClaim = "groups"
	}
	return l, nil
}

// LoginURL is where the core sends a browser that has no session: the
// login path with the request's path and query as the return URL.
func LoginURL(r *http.Request) string {
	return LoginPath + "?rd=" + url.QueryEscape(r.URL.RequestURI())
}

// ServeHTTP serves the three sign-in paths; any other path is a 404.
func (l *Login) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case LoginPath:
		if r.Method != http.MethodGet {
			l.methodNotAllowed(w, r, "GET")
			return
		}
		l.login(w, r)
	case CallbackPath:
		if r.Method != http.MethodGet {
			l.methodNotAllowed(w, r, "GET")
			return
		}
		l.callback(w, r)
	case LogoutPath:
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			l.methodNotAllowed(w, r, "GET, POST")
			return
		}
		l.logout(w, r)
	default:
		l.fail(w, r, http.StatusNotFound, ErrorData{}, nil)
	}
}

// flowState is what the flow cookie keeps between login and callback.
type flowState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Return   string `json:"r"`
	Created  int64  `json:"t"`
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func flowCookieName(state string) string {
	return flowCookiePrefix + state[:min(16, len(state))]
}

// returnURL validates the rd query parameter; missing means "/".
func returnURL(r *http.Request) (string, bool) {
	return returnFrom(r.URL.Query())
}

// returnFrom validates the rd value of v; missing means "/".
func returnFrom(v url.Values) (string, bool) {
	if _, present := v["rd"]; !present {
		return "/", true
	}
	return SafeRedirect(v.Get("rd"))
}

func (l *Login) login(w http.ResponseWriter, r *http.Request) {
	rd, ok := returnURL(r)
	if !ok {
		l.fail(w, r, http.StatusBadRequest, ErrorData{
			Title:   "This sign-in link isn't valid",
			Message: "The address to return to after signing in isn't allowed. Open the app again from its usual address.",
		}, errors.New("refused return URL"), "rd", r.URL.Query().Get("rd"))
		return
	}
	fs := flowState{
		State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(),
		Return: rd, Created: l.now().Unix(),
	}
	b, _ := json.Marshal(fs) // cannot fail: strings and an int
	name := flowCookieName(fs.State)
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: l.flow.seal(name, b), Path: flowCookiePath,
		MaxAge: int(flowTTL / time.Second), HttpOnly: true,
		Secure: l.opts.Sessions.secure(r), SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, l.oauth.AuthCodeURL(fs.State,
		oauth2.S256ChallengeOption(fs.Verifier), oidc.Nonce(fs.Nonce)), http.StatusFound)
}

// idpError matches the error codes of RFC 6749 4.1.2.1 (and extensions):
// only such a code is shown, never the IdP's free text, which anyone can
// put in a crafted callback link.
var idpError = regexp.MustCompile(`^[a-z_]{1,64}$`)

func (l *Login) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		l.fail(w, r, http.StatusBadRequest, ErrorData{
			Title:    "Sign-in failed",
			Message:  "The answer from the sign-in service is incomplete. Start again from the app.",
			RetryURL: LoginPath,
		}, errors.New("callback without state"))
		return
	}
	name := flowCookieName(state)
	fs, ok := l.openFlow(r, name)
	// The flow cookie is used once, whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: flowCookiePath, MaxAge: -1,
		HttpOnly: true, Secure: l.opts.Sessions.secure(r), SameSite: http.SameSiteLaxMode})
	if !ok || subtle.ConstantTimeCompare([]byte(fs.State), []byte(state)) != 1 {
		l.fail(w, r, http.StatusBadRequest, ErrorData{
			Title:    "This sign-in has expired",
			Message:  "The sign-in took too long, or was started in another browser or tab. Start again.",
			RetryURL: LoginPath,
		}, errors.New("state does not match a flow cookie"))
		return
	}
	retry := LoginPath
	rd, ok := SafeRedirect(fs.Return)
	if !ok {
		l.fail(w, r, http.StatusBadRequest, ErrorData{Title: "This sign-in link isn't valid",
			Message: "The address to return to after signing in isn't allowed.", RetryURL: retry},
			errors.New("refused return URL in flow"), "rd", fs.Return)
		return
	}
	retry = LoginPath + "?rd=" + url.QueryEscape(rd)
	if e := q.Get("error"); e != "" {
		shown := "unknown_error"
		if idpError.MatchString(e) {
			shown = e
		}
		l.fail(w, r, http.StatusUnauthorized, ErrorData{
			Title:    "Sign-in was refused",
			Message:  "The sign-in service refused the sign-in (" + shown + ").",
			RetryURL: retry,
		}, errors.New("identity provider error"), "idp_error", e, "idp_error_description", q.Get("error_description"))
		return
	}
	code := q.Get("code")
	if code == "" {
		l.fail(w, r, http.StatusBadRequest, ErrorData{Title: "Sign-in failed",
			Message: "The answer from the sign-in service has no code. Start again.", RetryURL: retry},
			errors.New("callback without code"))
		return
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, l.opts.Client)
	tok, err := l.oauth.Exchange(ctx, code, oauth2.VerifierOption(fs.Verifier))
	if err != nil {
		l.fail(w, r, http.StatusUnauthorized, ErrorData{Title: "Sign-in failed",
			Message: "The sign-in couldn't be completed. Start again.", RetryURL: retry},
			fmt.Errorf("code exchange: %w", err))
		return
	}
	sess, err := l.session(ctx, tok, fs.Nonce)
	if err != nil {
		l.fail(w, r, http.StatusUnauthorized, ErrorData{Title: "Sign-in failed",
			Message: "Your sign-in couldn't be verified. Start again.", RetryURL: retry}, err)
		return
	}
	if err := l.opts.Sessions.Set(w, r, sess); err != nil {
		if errors.Is(err, ErrSessionTooLarge) {
			l.fail(w, r, http.StatusForbidden, ErrorData{Title: "Your account is in too many groups",
				Message: "Your account belongs to more groups than a browser sign-in can hold, so you can't be signed in. Ask IT to limit the groups sent to riskgate (for example to the groups its policies use)."},
				err, "user", sess.User, "groups", len(sess.Groups))
			return
		}
		l.fail(w, r, http.StatusInternalServerError, ErrorData{RetryURL: retry}, err)
		return
	}
	l.logger.Info("sign-in", "user", sess.User, "groups", len(sess.Groups), "request_id", l.requestID(w, r))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, rd, http.StatusFound)
}

// openFlow reads and opens the flow cookie name; it must not be older than
// flowTTL by the injected clock (the cookie's Max-Age is only advice).
func (l *Login) openFlow(r *http.Request, name string) (flowState, bool) {
	var fs flowState
	c, err := r.Cookie(name)
	if err != nil {
		return fs, false
	}
	b, ok := l.flow.open(name, c.Value)
	if !ok || json.Unmarshal(b, &fs) != nil {
		return fs, false
	}
	created := time.Unix(fs.Created, 0)
	now := l.now()
	if now.Before(created.Add(-time.Minute)) || !now.Before(created.Add(flowTTL)) {
		return fs, false
	}
	return fs, true
}

// session verifies the ID token of tok (signature, issuer, audience =
// client_id, expiry, nonce) and builds the session from its claims.
func (l *Login) session(ctx context.Context, tok *oauth2.Token, nonce string) (*Session, error) {
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return nil, errors.New("token response without id_token")
	}
	idt, err := l.verifier.Verify(oidc.ClientContext(ctx, l.opts.Client), raw)
	if err != nil {
		return nil, fmt.Errorf("verify id token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, errors.New("id token nonce does not match")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("id token claims: %w", err)
	}
	if l.opts.UserInfo && l.provider.UserInfoEndpoint() != "" {
		ui, err := l.provider.UserInfo(oidc.ClientContext(ctx, l.opts.Client), oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, fmt.Errorf("userinfo: %w", err)
		}
		// OpenID Connect Core 5.3.2: the sub must match the ID token's.
		if ui.Subject != idt.Subject {
			return nil, errors.New("userinfo subject does not match the id token")
		}
		var more map[string]any
		if err := ui.Claims(&more); err != nil {
			return nil, fmt.Errorf("userinfo claims: %w", err)
		}
		for k, v := range more {
			if _, ok := claims[k]; !ok {
				claims[k] = v
			}
		}
	}
	user, _ := claims[l.userClaim].(string)
	if user == "" {
		return nil, fmt.Errorf("id token has no %q claim", l.userClaim)
	}
	email, _ := claims["email"].(string)
	// An unverified address must not name the user (anyone can type one
	// into a self-service IdP account).
	if emailUnverified(claims) {
		if l.userClaim == "email" {
			return nil, errors.New("id token email is not verified")
		}
		email = ""
	}
	sess := l.opts.Sessions.NewSession(user, email, claimStrings(claims[l.groupClaim]))
	sess.IDTokenExpiry = idt.Expiry
	for _, name := range l.opts.DeviceClaims {
		if v := claimString(claims[name]); v != "" {
			if sess.Claims == nil {
				sess.Claims = map[string]string{}
			}
			sess.Claims[name] = v
		}
	}
	return sess, nil
}

// claimStrings reads a groups claim: a list of strings or one string.
func claimStrings(v any) []string {
	switch g := v.(type) {
	case string:
		if g != "" {
			return []string{g}
		}
	case []any:
		out := make([]string, 0, len(g))
		for _, e := range g {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// claimString reads a scalar claim (device ids may be numbers).
func claimString(v any) string {
	switch c := v.(type) {
	case string:
		return c
	case float64:
		return strconv.FormatFloat(c, 'f', -1, 64)
	}
	return ""
}

// logout serves the logout path. Signing out changes state, so a GET
// only asks (the confirmation page, whose form carries a CSRF token bound
// to the session cookie) and only a POST with that token signs out: a
// cross-site <img> or link can no longer sign the user out. A browser
// without a session cookie has nothing to protect and is sent to rd.
func (l *Login) logout(w http.ResponseWriter, r *http.Request) {
	rdValues := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxLogoutForm)
		if err := r.ParseForm(); err != nil {
			l.fail(w, r, http.StatusBadRequest, ErrorData{
				Title:   "This sign-out request isn't valid",
				Message: "The sign-out form couldn't be read. Go back and try again.",
			}, fmt.Errorf("logout form: %w", err))
			return
		}
		if _, ok := r.PostForm["rd"]; ok {
			rdValues = r.PostForm
		}
	}
	rd, ok := returnFrom(rdValues)
	if !ok {
		l.fail(w, r, http.StatusBadRequest, ErrorData{
			Title:   "This sign-out link isn't valid",
			Message: "The address to return to after signing out isn't allowed.",
		}, errors.New("refused return URL"), "rd", rdValues.Get("rd"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	c, err := r.Cookie(l.opts.Sessions.CookieName())
	if err != nil || c.Value == "" {
		// Already signed out: nothing to clear, no identity provider
		// session to end on someone else's say-so.
		http.Redirect(w, r, rd, http.StatusSeeOther)
		return
	}
	if r.Method != http.MethodPost {
		if err := l.pages.SignOut(w, SignOutData{
			Action: LogoutPath, Token: l.logoutToken(c.Value), Return: rd, FormTargets: l.formTarget,
		}); err != nil {
			l.logger.Warn("sign-out page", "request_id", l.requestID(w, r), "error", err)
		}
		return
	}
	if !l.validLogoutToken(c.Value, r.PostForm.Get("csrf")) {
		l.fail(w, r, http.StatusForbidden, ErrorData{
			Title:    "Sign-out wasn't confirmed",
			Message:  "This sign-out didn't come from the sign-out page, or the page was out of date. You are still signed in.",
			RetryURL: LogoutPath + "?rd=" + url.QueryEscape(rd),
		}, errors.New("logout csrf token does not match the session"))
		return
	}
	l.opts.Sessions.Clear(w, r)
	l.logger.Info("sign-out", "request_id", l.requestID(w, r))
	// 303: the browser follows with a GET.
	http.Redirect(w, r, l.afterLogout(rd), http.StatusSeeOther)
}

// afterLogout is where a signed-out browser goes: the identity provider's
// end_session_endpoint when it has one, rd otherwise.
func (l *Login) afterLogout(rd string) string {
	if l.endSession == "" {
		return rd
	}
	// OpenID Connect RP-Initiated Logout 1.0, section 2. The ID token is
	// not kept (it would double the cookie), so client_id identifies us.
	u, err := url.Parse(l.endSession)
	if err != nil {
		return rd
	}
	post := l.opts.PostLogoutRedirectURL
	if post == "" {
		post = l.origin + rd
	}
	v := u.Query()
	v.Set("client_id", l.oauth.ClientID)
	v.Set("post_logout_redirect_uri", post)
	u.RawQuery = v.Encode()
	return u.String()
}

// logoutToken is the sign-out CSRF token for the session cookie value:
// HMAC-SHA256 with a key of its own derived from the session secret. A
// cross-site page can neither read the (HttpOnly) cookie nor make the MAC.
func (l *Login) logoutToken(cookie string) string {
	return base64.RawURLEncoding.EncodeToString(logoutMAC(l.csrfKeys[0], cookie))
}

// validLogoutToken checks token against cookie with every key (a secret
// rotated between the page and the POST still works).
func (l *Login) validLogoutToken(cookie, token string) bool {
	got, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	for _, k := range l.csrfKeys {
		if hmac.Equal(got, logoutMAC(k, cookie)) {
			return true
		}
	}
	return false
}

func logoutMAC(key []byte, cookie string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(cookie))
	return m.Sum(nil)
}

func (l *Login) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	l.fail(w, r, http.StatusMethodNotAllowed, ErrorData{Title: "Method not allowed",
		Message: "This address only answers " + allow + "."}, nil)
}

func (l *Login) requestID(w http.ResponseWriter, r *http.Request) string {
	if l.opts.RequestID != nil {
		return l.opts.RequestID(w, r)
	}
	return w.Header().Get(headerRequestID)
}

// fail logs err (when not nil) with the request id and writes the page. No
// session is set on any failure path.
func (l *Login) fail(w http.ResponseWriter, r *http.Request, status int, d ErrorData, err error, attrs ...any) {
	d.RequestID = l.requestID(w, r)
	if err != nil {
		attrs = append(attrs, "status", status, "path", r.URL.Path, "request_id", d.RequestID, "error", err)
		l.logger.Warn("sign-in failed", attrs...)
	}
	_ = l.pages.Error(w, status, d)
}
