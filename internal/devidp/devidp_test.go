package devidp_test

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/riskgate/riskgate/internal/devidp"
)

const (
	clientID     = "riskgate"
	clientSecret = "s3cret"
	redirectURI  = "https://mail.corp.example/.riskgate/callback"
	otherURI     = "https://docs.corp.example/.riskgate/callback"
	logoutURI    = "https://mail.corp.example/"
)

var demoUsers = []devidp.User{
	{Email: "alice@corp.example", Name: "Alice Admin", Groups: []string{"staff", "admins"}, DeviceID: "d-alice-iphone"},
	{Email: "bob@corp.example", Name: "Bob Builder", Groups: []string{"staff"}, DeviceID: "d-bob-pixel"},
	{Email: "carol@corp.example", Name: "Carol NoDevice"},
}

// fakeClock is a settable clock for code expiry.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

type env struct {
	idp      *devidp.Server
	url      string
	clock    *fakeClock
	provider *oidc.Provider
	// browser follows no redirects, so each step can be asserted.
	browser *http.Client
}

// start serves a devidp at an httptest URL (plus path, when given).
func start(t *testing.T, path string) *env {
	t.Helper()
	e := &env{clock: &fakeClock{}}
	var h atomic.Pointer[devidp.Server]
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.Load().ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	e.url = ts.URL + path
	idp, err := devidp.New(devidp.Options{
		Issuer: e.url,
		Users:  demoUsers,
		Clients: []devidp.Client{{
			ID: clientID, Secret: clientSecret,
			RedirectURIs:           []string{redirectURI, otherURI},
			PostLogoutRedirectURIs: []string{logoutURI},
		}, {ID: "other", Secret: "other-secret", RedirectURIs: []string{"https://other.example/cb"}}},
		Now: e.clock.Now,
	})
	require.NoError(t, err)
	h.Store(idp)
	e.idp = idp
	e.provider, err = oidc.NewProvider(t.Context(), e.url)
	require.NoError(t, err)
	e.browser = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e
}

func (e *env) config(style oauth2.AuthStyle, redirect string) *oauth2.Config {
	ep := e.provider.Endpoint()
	ep.AuthStyle = style
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirect,
		Endpoint: ep, Scopes: []string{oidc.ScopeOpenID, "email", "profile"},
	}
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// login opens authURL like a browser, checks the user picker and picks
// email; it returns the redirect the issuer answers with.
func (e *env) login(t *testing.T, authURL, email string) *url.URL {
	t.Helper()
	resp, err := e.browser.Get(authURL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	page := string(body)
	assert.Contains(t, page, "development")
	form := url.Values{"user": {email}}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	resp, err = e.browser.PostForm(e.url+"/authorize", form)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	return loc
}

// code runs the browser part of the flow and returns the code and the PKCE
// verifier it belongs to.
func (e *env) code(t *testing.T, cfg *oauth2.Config, email string) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	loc := e.login(t, cfg.AuthCodeURL("st-1", oidc.Nonce("n-1"), oauth2.S256ChallengeOption(verifier)), email)
	require.Equal(t, cfg.RedirectURL, loc.Scheme+"://"+loc.Host+loc.Path)
	require.Equal(t, "st-1", loc.Query().Get("state"))
	require.NotEmpty(t, loc.Query().Get("code"))
	return loc.Query().Get("code"), verifier
}

func retrieveErrorCode(t *testing.T, err error) string {
	t.Helper()
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re)
	return re.ErrorCode
}

func TestFullFlow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		path  string
		style oauth2.AuthStyle
	}{
		{"client_secret_basic", "", oauth2.AuthStyleInHeader},
		{"client_secret_post", "", oauth2.AuthStyleInParams},
		{"issuer with path", "/idp", oauth2.AuthStyleInHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, tc.path)
			cfg := e.config(tc.style, redirectURI)
			code, verifier := e.code(t, cfg, "Alice@corp.example")

			tok, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
			require.NoError(t, err)
			rawID, ok := tok.Extra("id_token").(string)
			require.True(t, ok)
			idt, err := e.provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(t.Context(), rawID)
			require.NoError(t, err)
			require.NoError(t, idt.VerifyAccessToken(tok.AccessToken))
			assert.Equal(t, "n-1", idt.Nonce)
			assert.Equal(t, e.url, idt.Issuer)
			var claims struct {
				Email    string   `json:"email"`
				Name     string   `json:"name"`
				Groups   []string `json:"groups"`
				DeviceID string   `json:"deviceid"`
			}
			require.NoError(t, idt.Claims(&claims))
			assert.Equal(t, "alice@corp.example", claims.Email)
			assert.Equal(t, "Alice Admin", claims.Name)
			assert.Equal(t, []string{"staff", "admins"}, claims.Groups)
			assert.Equal(t, "d-alice-iphone", claims.DeviceID)
			assert.NotEmpty(t, idt.Subject)

			ui, err := e.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
			require.NoError(t, err)
			assert.Equal(t, "alice@corp.example", ui.Email)
			assert.Equal(t, idt.Subject, ui.Subject)
		})
	}
}

func TestTokenRefusals(t *testing.T) {
	e := start(t, "")
	cfg := e.config(oauth2.AuthStyleInHeader, redirectURI)

	t.Run("wrong verifier", func(t *testing.T) {
		code, _ := e.code(t, cfg, "bob@corp.example")
		_, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		assert.Equal(t, "invalid_grant", retrieveErrorCode(t, err))
	})
	t.Run("no verifier", func(t *testing.T) {
		code, _ := e.code(t, cfg, "bob@corp.example")
		_, err := cfg.Exchange(t.Context(), code)
		assert.Equal(t, "invalid_grant", retrieveErrorCode(t, err))
	})
	t.Run("replayed code", func(t *testing.T) {
		code, verifier := e.code(t, cfg, "bob@corp.example")
		_, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		require.NoError(t, err)
		_, err = cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		assert.Equal(t, "invalid_grant", retrieveErrorCode(t, err))
	})
	t.Run("code spent by a wrong try", func(t *testing.T) {
		code, verifier := e.code(t, cfg, "bob@corp.example")
		_, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		require.Error(t, err)
		_, err = cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		assert.Equal(t, "invalid_grant", retrieveErrorCode(t, err))
	})
	t.Run("redirect_uri differs from the authorization request", func(t *testing.T) {
		code, verifier := e.code(t, cfg, "bob@corp.example")
		_, err := e.config(oauth2.AuthStyleInHeader, otherURI).Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		assert.Equal(t, "invalid_grant", retrieveErrorCode(t, err))
	})
	t.Run("expired code", func(t *testing.T) {
		code, verifier := e.code(t, cfg, "bob@corp.example")
		e.clock.Advance(61 * time.Second)
		_, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		assert.Equal(t, "invalid_grant", retrieveErrorCode(t, err))
	})
	t.Run("wrong client secret", func(t *testing.T) {
		code, verifier := e.code(t, cfg, "bob@corp.example")
		bad := *cfg
		bad.ClientSecret = "nope"
		_, err := bad.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		assert.Equal(t, "invalid_client", retrieveErrorCode(t, err))
	})
	t.Run("code of another client", func(t *testing.T) {
		code, verifier := e.code(t, cfg, "bob@corp.example")
		other := &oauth2.Config{ClientID: "other", ClientSecret: "other-secret", RedirectURL: redirectURI, Endpoint: cfg.Endpoint}
		_, err := other.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		assert.Equal(t, "invalid_grant", retrieveErrorCode(t, err))
	})
	t.Run("password grant", func(t *testing.T) {
		_, err := cfg.PasswordCredentialsToken(t.Context(), "alice@corp.example", "x")
		assert.Equal(t, "unsupported_grant_type", retrieveErrorCode(t, err))
	})
}

func TestAuthorizeRefusals(t *testing.T) {
	e := start(t, "")
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	good := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"scope": {"openid email"}, "state": {"xyz"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	with := func(k, v string) url.Values {
		q := url.Values{}
		for kk, vv := range good {
			q[kk] = vv
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	for _, tc := range []struct {
		name  string
		query url.Values
		// redirectErr is the error sent to the client; empty means the
		// request is refused on a page, without a redirect.
		redirectErr string
	}{
		{"unknown client", with("client_id", "nobody"), ""},
		{"unregistered redirect_uri", with("redirect_uri", "https://evil.example/cb"), ""},
		{"redirect_uri prefix of a registered one", with("redirect_uri", "https://mail.corp.example/.riskgate/"), ""},
		{"no PKCE", with("code_challenge", ""), "invalid_request"},
		{"plain PKCE", with("code_challenge_method", "plain"), "invalid_request"},
		{"implicit flow", with("response_type", "token"), "unsupported_response_type"},
		{"not OIDC", with("scope", "email"), "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				var resp *http.Response
				var err error
				if method == http.MethodGet {
					resp, err = e.browser.Get(e.url + "/authorize?" + tc.query.Encode())
				} else {
					form := url.Values{"user": {"alice@corp.example"}}
					for k, v := range tc.query {
						form[k] = v
					}
					resp, err = e.browser.PostForm(e.url+"/authorize", form)
				}
				require.NoError(t, err)
				resp.Body.Close()
				if tc.redirectErr == "" {
					assert.Equal(t, http.StatusBadRequest, resp.StatusCode, method)
					assert.Empty(t, resp.Header.Get("Location"), method)
					continue
				}
				require.Equal(t, http.StatusFound, resp.StatusCode, method)
				loc, err := url.Parse(resp.Header.Get("Location"))
				require.NoError(t, err)
				assert.Equal(t, tc.redirectErr, loc.Query().Get("error"), method)
				assert.Equal(t, "xyz", loc.Query().Get("state"), method)
				assert.Empty(t, loc.Query().Get("code"), method)
			}
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		form := with("", "")
		form.Set("user", "mallory@corp.example")
		resp, err := e.browser.PostForm(e.url+"/authorize", form)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
}

func TestLoginPageShowsUsers(t *testing.T) {
	e := start(t, "")
	cfg := e.config(oauth2.AuthStyleInHeader, redirectURI)
	resp, err := e.browser.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	for _, want := range []string{"development", "Alice Admin", "alice@corp.example", "admins", "d-alice-iphone", "Bob Builder", "d-bob-pixel", "Carol NoDevice", `name="viewport"`} {
		assert.Contains(t, page, want)
	}
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))

	resp, err = e.browser.Get(e.url + "/")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "development")
	assert.Contains(t, string(body), "d-bob-pixel")
}

func TestMintedToken(t *testing.T) {
	e := start(t, "")
	raw, err := e.idp.Token("bob@corp.example", "riskgate", 10*time.Minute)
	require.NoError(t, err)
	idt, err := e.provider.Verifier(&oidc.Config{ClientID: "riskgate"}).Verify(t.Context(), raw)
	require.NoError(t, err)
	var claims map[string]any
	require.NoError(t, idt.Claims(&claims))
	assert.Equal(t, "bob@corp.example", claims["email"])
	assert.Equal(t, "d-bob-pixel", claims["deviceid"])
	assert.Equal(t, []any{"staff"}, claims["groups"])
	assert.WithinDuration(t, e.clock.Now().Add(10*time.Minute), idt.Expiry, 2*time.Second)

	_, err = e.provider.Verifier(&oidc.Config{ClientID: "someone-else"}).Verify(t.Context(), raw)
	assert.Error(t, err)

	ui, err := e.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: raw}))
	require.NoError(t, err)
	assert.Equal(t, "bob@corp.example", ui.Email)

	_, err = e.idp.Token("mallory@corp.example", "riskgate", time.Minute)
	assert.Error(t, err)
	_, err = e.idp.Token("bob@corp.example", "riskgate", 0)
	assert.Error(t, err)

	t.Run("expired token refused by userinfo", func(t *testing.T) {
		e.clock.Advance(11 * time.Minute)
		_, err = e.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: raw}))
		assert.Error(t, err)
	})
	t.Run("userinfo without token", func(t *testing.T) {
		resp, err := http.Get(e.url + "/userinfo")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}

func TestLogout(t *testing.T) {
	e := start(t, "")
	hint, err := e.idp.Token("alice@corp.example", clientID, time.Minute)
	require.NoError(t, err)
	otherHint, err := e.idp.Token("alice@corp.example", "other", time.Minute)
	require.NoError(t, err)
	for _, tc := range []struct {
		name     string
		query    url.Values
		status   int
		location string
	}{
		{"registered uri by client_id", url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {logoutURI}, "state": {"s1"}}, http.StatusFound, logoutURI + "?state=s1"},
		{"registered uri by id_token_hint", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {logoutURI}}, http.StatusFound, logoutURI},
		{"unregistered uri", url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {"https://evil.example/"}}, http.StatusBadRequest, ""},
		{"uri of another client", url.Values{"id_token_hint": {otherHint}, "post_logout_redirect_uri": {logoutURI}}, http.StatusBadRequest, ""},
		{"login redirect uri is not a logout uri", url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {redirectURI}}, http.StatusBadRequest, ""},
		{"no client", url.Values{"post_logout_redirect_uri": {logoutURI}}, http.StatusBadRequest, ""},
		{"forged hint", url.Values{"id_token_hint": {hint + "x"}, "post_logout_redirect_uri": {logoutURI}}, http.StatusBadRequest, ""},
		{"no redirect", url.Values{}, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.browser.Get(e.url + "/logout?" + tc.query.Encode())
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, tc.location, resp.Header.Get("Location"))
		})
	}
	t.Run("discovery names it", func(t *testing.T) {
		var d struct {
			EndSession string   `json:"end_session_endpoint"`
			PKCE       []string `json:"code_challenge_methods_supported"`
		}
		require.NoError(t, e.provider.Claims(&d))
		assert.Equal(t, e.url+"/logout", d.EndSession)
		assert.Equal(t, []string{"S256"}, d.PKCE)
	})
}

func TestNewRejectsBadOptions(t *testing.T) {
	client := devidp.Client{ID: "c", Secret: "s", RedirectURIs: []string{"https://a.example/cb"}}
	user := devidp.User{Email: "a@example.com"}
	for _, tc := range []struct {
		name string
		opts devidp.Options
	}{
		{"relative issuer", devidp.Options{Issuer: "/idp", Users: []devidp.User{user}, Clients: []devidp.Client{client}}},
		{"issuer with query", devidp.Options{Issuer: "http://a/?x=1", Users: []devidp.User{user}, Clients: []devidp.Client{client}}},
		{"no users", devidp.Options{Issuer: "http://a", Clients: []devidp.Client{client}}},
		{"duplicate user", devidp.Options{Issuer: "http://a", Users: []devidp.User{user, {Email: "A@example.com"}}, Clients: []devidp.Client{client}}},
		{"no clients", devidp.Options{Issuer: "http://a", Users: []devidp.User{user}}},
		{"client without secret", devidp.Options{Issuer: "http://a", Users: []devidp.User{user}, Clients: []devidp.Client{{ID: "c", RedirectURIs: []string{"https://a.example/cb"}}}}},
		{"relative redirect", devidp.Options{Issuer: "http://a", Users: []devidp.User{user}, Clients: []devidp.Client{{ID: "c", Secret: "s", RedirectURIs: []string{"/cb"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := devidp.New(tc.opts)
			assert.Error(t, err)
		})
	}
}
