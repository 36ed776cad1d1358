package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/oidctest"
)

const (
	testClientSecret = "client-secret"
	testAlice        = "alice@corp.example"
)

// loginEnv is a test issuer, and a proxy serving the sign-in paths and an
// app behind the session authenticator, and a browser-like client with a
// cookie jar that does not follow redirects by itself.
type loginEnv struct {
	iss      *oidctest.Issuer
	proxy    *httptest.Server
	login    *Login
	sessions *Sessions
	clock    *testClock
	jar      *cookiejar.Jar
	client   *http.Client
	logs     *lockedBuffer
}

func newLoginEnv(t *testing.T, edit func(*LoginOptions)) *loginEnv {
	t.Helper()
	env := &loginEnv{iss: oidctest.New(t), clock: newTestClock(), logs: &lockedBuffer{}}
	mux := http.NewServeMux()
	env.proxy = httptest.NewServer(mux)
	t.Cleanup(env.proxy.Close)

	env.iss.AddClient(oidctest.Client{ID: "riskgate", Secret: testClientSecret,
		RedirectURIs: []string{env.proxy.URL + CallbackPath}})
	env.iss.AddUser(testAlice, map[string]any{"groups": []string{"staff", "mail-users"}, "deviceid": "d-1", "email_verified": true})

	auth := testAuth(testSecret)
	auth.Issuer = env.iss.URL
	auth.ClientSecret = testClientSecret
	auth.RedirectURL = env.proxy.URL + CallbackPath
	var err error
	env.sessions, err = NewSessions(auth, env.clock.Now)
	require.NoError(t, err)
	opts := LoginOptions{
		Auth: auth, Client: env.iss.Server.Client(), Now: env.clock.Now,
		Logger:   slog.New(slog.NewTextHandler(env.logs, nil)),
		Sessions: env.sessions, DeviceClaims: []string{"deviceid"},
	}
	if edit != nil {
		edit(&opts)
	}
	env.login, err = NewLogin(t.Context(), opts)
	require.NoError(t, err)

	authn := NewSessionAuthenticator(env.sessions)
	mux.Handle("/.riskgate/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-1")
		env.login.ServeHTTP(w, r)
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		id, err := authn.Authenticate(r)
		if errors.Is(err, ErrNoCredentials) {
			http.Redirect(w, r, LoginURL(r), http.StatusFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "hello %s groups=%v device=%v at %s", id.User, id.Groups, id.Claims["deviceid"], r.URL.RequestURI())
	})

	env.jar, err = cookiejar.New(nil)
	require.NoError(t, err)
	env.client = &http.Client{
		Jar: env.jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return env
}

// get fetches u (absolute, or a path on the proxy) and returns the response
// with its body read.
func (env *loginEnv) get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	if strings.HasPrefix(u, "/") {
		u = env.proxy.URL + u
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html")
	resp, err := env.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// location returns the absolute redirect target of resp.
func location(t *testing.T, resp *http.Response) *url.URL {
	t.Helper()
	require.Contains(t, []int{http.StatusFound, http.StatusSeeOther}, resp.StatusCode)
	u, err := resp.Location()
	require.NoError(t, err)
	return u
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func flowCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, flowCookiePrefix) {
			return c
		}
	}
	return nil
}

// assertNoSession checks that resp sets no session.
func assertNoSession(t *testing.T, resp *http.Response) {
	t.Helper()
	if c := cookieNamed(resp, "_riskgate"); c != nil {
		assert.Empty(t, c.Value, "no session may be set")
	}
}

// startLogin requests the app at path, follows the redirect to the login
// path and returns the authorization URL (not yet visited).
func (env *loginEnv) startLogin(t *testing.T, path string) *url.URL {
	t.Helper()
	resp, _ := env.get(t, path)
	toLogin := location(t, resp)
	assert.Equal(t, LoginPath, toLogin.Path)
	assert.Equal(t, path, toLogin.Query().Get("rd"))
	resp, _ = env.get(t, toLogin.String())
	return location(t, resp)
}

// authorize visits the authorization URL and returns the callback URL the
// issuer sends the browser to.
func (env *loginEnv) authorize(t *testing.T, authURL *url.URL) *url.URL {
	t.Helper()
	resp, body := env.get(t, authURL.String())
	require.Equal(t, http.StatusFound, resp.StatusCode, body)
	cb := location(t, resp)
	require.Equal(t, CallbackPath, cb.Path)
	return cb
}

func TestLoginFlow(t *testing.T) {
	env := newLoginEnv(t, nil)
	const start = "/mail/inbox?x=1&folder=a%2Fb"

	resp, _ := env.get(t, start)
	toLogin := location(t, resp)
	assert.Equal(t, start, toLogin.Query().Get("rd"))

	resp, _ = env.get(t, toLogin.String())
	authURL := location(t, resp)
	assert.Equal(t, env.iss.URL+"/authorize", authURL.Scheme+"://"+authURL.Host+authURL.Path)
	q := authURL.Query()
	assert.Equal(t, "code", q.Get("response_type"))
	assert.Equal(t, "riskgate", q.Get("client_id"))
	assert.Equal(t, env.proxy.URL+CallbackPath, q.Get("redirect_uri"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.Len(t, q.Get("code_challenge"), 43, "base64url of a SHA-256")
	assert.GreaterOrEqual(t, len(q.Get("state")), 43)
	assert.GreaterOrEqual(t, len(q.Get("nonce")), 43)
	assert.NotEqual(t, q.Get("state"), q.Get("nonce"))
	assert.ElementsMatch(t, []string{"openid", "email", "profile"}, strings.Fields(q.Get("scope")))
	assert.Empty(t, q.Get("code_verifier"), "the verifier never leaves riskgate")
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

	flow := flowCookieOf(resp)
	require.NotNil(t, flow)
	assert.True(t, flow.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, flow.SameSite)
	assert.Equal(t, "/.riskgate/", flow.Path)
	assert.Equal(t, 600, flow.MaxAge)
	assert.NotContains(t, flow.Value, q.Get("state"), "the flow cookie is encrypted")

	cb := env.authorize(t, authURL)
	assert.Equal(t, q.Get("state"), cb.Query().Get("state"))
	assert.NotEmpty(t, cb.Query().Get("code"))

	resp, body := env.get(t, cb.String())
	require.Equal(t, http.StatusFound, resp.StatusCode, body)
	assert.Equal(t, start, resp.Header.Get("Location"), "back on the original URL")
	sess := cookieNamed(resp, "_riskgate")
	require.NotNil(t, sess)
	assert.True(t, sess.HttpOnly)
	assert.False(t, sess.Secure, "http test server")
	assert.Equal(t, http.SameSiteLaxMode, sess.SameSite)
	assert.Equal(t, "/", sess.Path)
	assert.Equal(t, 8*3600, sess.MaxAge)
	usedFlow := cookieNamed(resp, flow.Name)
	require.NotNil(t, usedFlow, "the flow cookie is deleted")
	assert.Negative(t, usedFlow.MaxAge)

	resp, body = env.get(t, start)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hello alice@corp.example groups=[staff mail-users] device=d-1 at "+start, body)
}

func TestLoginDefaultReturnAndTwoTabs(t *testing.T) {
	env := newLoginEnv(t, nil)
	resp, _ := env.get(t, LoginPath)
	first := location(t, resp)
	// A second sign-in started in another tab before the first finished.
	second := env.startLogin(t, "/calendar")

	resp, body := env.get(t, env.authorize(t, second).String())
	require.Equal(t, http.StatusFound, resp.StatusCode, body)
	assert.Equal(t, "/calendar", resp.Header.Get("Location"))
	resp, body = env.get(t, env.authorize(t, first).String())
	require.Equal(t, http.StatusFound, resp.StatusCode, body)
	assert.Equal(t, "/", resp.Header.Get("Location"), "no rd: the root")
}

func TestLoginRefusals(t *testing.T) {
	tests := []struct {
		name   string
		status int
		log    string // in the failure's log line: the refusal is the one meant
		// run drives the flow to a bad callback and returns its response.
		run func(t *testing.T, env *loginEnv) (*http.Response, string)
	}{
		{"missing state", http.StatusBadRequest, "callback without state", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			cb := env.authorize(t, env.startLogin(t, "/mail"))
			v := cb.Query()
			v.Del("state")
			cb.RawQuery = v.Encode()
			return env.get(t, cb.String())
		}},
		{"wrong state", http.StatusBadRequest, "state does not match", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			cb := env.authorize(t, env.startLogin(t, "/mail"))
			v := cb.Query()
			v.Set("state", randomToken())
			cb.RawQuery = v.Encode()
			return env.get(t, cb.String())
		}},
		{"state of another browser", http.StatusBadRequest, "state does not match", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			cb := env.authorize(t, env.startLogin(t, "/mail"))
			other := newLoginEnvClient(t)
			env.client, env.jar = other.client, other.jar
			return env.get(t, cb.String())
		}},
		{"expired flow", http.StatusBadRequest, "state does not match", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			cb := env.authorize(t, env.startLogin(t, "/mail"))
			env.clock.Advance(flowTTL)
			return env.get(t, cb.String())
		}},
		{"wrong nonce", http.StatusUnauthorized, "nonce does not match", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			authURL := env.startLogin(t, "/mail")
			v := authURL.Query()
			v.Set("nonce", randomToken())
			authURL.RawQuery = v.Encode()
			return env.get(t, env.authorize(t, authURL).String())
		}},
		{"no nonce in id token", http.StatusUnauthorized, "nonce does not match", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			env.iss.EditIDTokens(func(c map[string]any) { delete(c, "nonce") })
			return env.get(t, env.authorize(t, env.startLogin(t, "/mail")).String())
		}},
		{"wrong PKCE verifier", http.StatusUnauthorized, "invalid_grant", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			authURL := env.startLogin(t, "/mail")
			v := authURL.Query()
			// The challenge of another verifier: the one riskgate keeps
			// in its flow cookie no longer matches.
			v.Set("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
			authURL.RawQuery = v.Encode()
			return env.get(t, env.authorize(t, authURL).String())
		}},
		{"replayed code", http.StatusUnauthorized, "invalid_grant", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			authURL := env.startLogin(t, "/mail")
			proxyURL, _ := url.Parse(env.proxy.URL + "/.riskgate/")
			flow := env.jar.Cookies(proxyURL)
			cb := env.authorize(t, authURL)
			resp, body := env.get(t, cb.String())
			require.Equal(t, http.StatusFound, resp.StatusCode, body)
			// An attacker holding the callback URL and the flow cookie
			// replays both in a fresh browser.
			other := newLoginEnvClient(t)
			env.client, env.jar = other.client, other.jar
			env.jar.SetCookies(proxyURL, flow)
			return env.get(t, cb.String())
		}},
		{"identity provider error", http.StatusUnauthorized, "idp_error=access_denied", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			authURL := env.startLogin(t, "/mail")
			resp, body := env.get(t, "/.riskgate/callback?error=access_denied&error_description=Call+0800+FRAUD&state="+authURL.Query().Get("state"))
			assert.Contains(t, body, "access_denied")
			assert.NotContains(t, body, "FRAUD", "the IdP's free text is not shown")
			return resp, body
		}},
		{"unknown user at the issuer", http.StatusUnauthorized, "idp_error=access_denied", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			authURL := env.startLogin(t, "/mail")
			v := authURL.Query()
			v.Set("login_hint", "nobody@corp.example")
			authURL.RawQuery = v.Encode()
			return env.get(t, env.authorize(t, authURL).String())
		}},
		{"missing code", http.StatusBadRequest, "callback without code", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			cb := env.authorize(t, env.startLogin(t, "/mail"))
			v := cb.Query()
			v.Del("code")
			cb.RawQuery = v.Encode()
			return env.get(t, cb.String())
		}},
		{"id token for another audience", http.StatusUnauthorized, "verify id token", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			env.iss.EditIDTokens(func(c map[string]any) { c["aud"] = "another-app" })
			return env.get(t, env.authorize(t, env.startLogin(t, "/mail")).String())
		}},
		{"expired id token", http.StatusUnauthorized, "token is expired", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			env.iss.EditIDTokens(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })
			return env.get(t, env.authorize(t, env.startLogin(t, "/mail")).String())
		}},
		{"unverified email as user", http.StatusUnauthorized, "email is not verified", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			env.iss.EditIDTokens(func(c map[string]any) { c["email_verified"] = false })
			return env.get(t, env.authorize(t, env.startLogin(t, "/mail")).String())
		}},
		{"no user claim", http.StatusUnauthorized, "email\\\" claim", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			env.iss.EditIDTokens(func(c map[string]any) { delete(c, "email") })
			return env.get(t, env.authorize(t, env.startLogin(t, "/mail")).String())
		}},
		{"too many groups", http.StatusForbidden, "too large for a cookie", func(t *testing.T, env *loginEnv) (*http.Response, string) {
			groups := make([]string, 300)
			for i := range groups {
				groups[i] = fmt.Sprintf("group-%04d-with-a-long-name", i)
			}
			env.iss.EditIDTokens(func(c map[string]any) { c["groups"] = groups })
			resp, body := env.get(t, env.authorize(t, env.startLogin(t, "/mail")).String())
			assert.Contains(t, body, "too many groups")
			return resp, body
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newLoginEnv(t, nil)
			resp, body := tc.run(t, env)
			assert.Equal(t, tc.status, resp.StatusCode, body)
			assert.Empty(t, resp.Header.Get("Location"))
			assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			assert.Contains(t, body, "req-1", "the request id is on the page")
			assertNoSession(t, resp)
			resp, _ = env.get(t, "/mail")
			assert.Equal(t, http.StatusFound, resp.StatusCode, "still signed out")
			assert.Contains(t, env.logs.String(), "sign-in failed")
			assert.Contains(t, env.logs.String(), tc.log)
		})
	}
}

// lockedBuffer is a log sink the servers' goroutines write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newLoginEnvClient is a second, empty browser.
func newLoginEnvClient(t *testing.T) *loginEnv {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &loginEnv{jar: jar, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func TestLoginBadSessionCookiesAreSignedOut(t *testing.T) {
	env := newLoginEnv(t, nil)
	resp, _ := env.get(t, env.authorize(t, env.startLogin(t, "/mail")).String())
	good := cookieNamed(resp, "_riskgate")
	require.NotNil(t, good)
	foreign, err := NewSessions(testAuth("another-secret-another-secret!!"), env.clock.Now)
	require.NoError(t, err)
	foreignValue, err := foreign.Encode(foreign.NewSession(testAlice, "", nil))
	require.NoError(t, err)

	proxyURL, _ := url.Parse(env.proxy.URL)
	for name, value := range map[string]string{
		"tampered": good.Value[:20] + strings.ToUpper(good.Value[20:21]) + strings.ToLower(good.Value[21:]),
		"foreign":  foreignValue,
		"garbage":  "x",
	} {
		t.Run(name, func(t *testing.T) {
			env.jar.SetCookies(proxyURL, []*http.Cookie{{Name: "_riskgate", Value: value, Path: "/"}})
			resp, _ := env.get(t, "/mail")
			assert.Equal(t, http.StatusFound, resp.StatusCode)
			assert.Equal(t, LoginPath, location(t, resp).Path)
		})
	}
	t.Run("expired", func(t *testing.T) {
		env.jar.SetCookies(proxyURL, []*http.Cookie{{Name: "_riskgate", Value: good.Value, Path: "/"}})
		resp, _ := env.get(t, "/mail")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		env.clock.Advance(8 * time.Hour)
		resp, _ = env.get(t, "/mail")
		assert.Equal(t, http.StatusFound, resp.StatusCode)
	})
}

func TestHostileReturnURLsRefused(t *testing.T) {
	env := newLoginEnv(t, nil)
	proxyURL, _ := url.Parse(env.proxy.URL)
	check := func(t *testing.T, resp *http.Response, body string) {
		t.Helper()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Location"))
		assert.NotContains(t, body, "evil.example")
		assertNoSession(t, resp)
	}
	for _, raw := range hostileReturnURLs {
		t.Run("login "+raw, func(t *testing.T) {
			resp, body := env.get(t, LoginPath+"?rd="+url.QueryEscape(raw))
			check(t, resp, body)
			assert.Nil(t, flowCookieOf(resp), "no sign-in is started")
		})
		t.Run("callback "+raw, func(t *testing.T) {
			// A flow cookie holding a hostile return URL cannot be made
			// without the key; the callback re-checks it all the same.
			state := randomToken()
			b, err := json.Marshal(flowState{State: state, Nonce: "n", Verifier: "v", Return: raw, Created: env.clock.Now().Unix()})
			require.NoError(t, err)
			name := flowCookieName(state)
			env.jar.SetCookies(&url.URL{Scheme: "http", Host: proxyURL.Host, Path: "/.riskgate/"},
				[]*http.Cookie{{Name: name, Value: env.login.flow.seal(name, b), Path: "/.riskgate/"}})
			resp, body := env.get(t, CallbackPath+"?code=c&state="+state)
			check(t, resp, body)
		})
		t.Run("logout "+raw, func(t *testing.T) {
			resp, body := env.get(t, LogoutPath+"?rd="+url.QueryEscape(raw))
			check(t, resp, body)
			assert.NotContains(t, body, "<form")
		})
		t.Run("logout post "+raw, func(t *testing.T) {
			// Signed in and with a valid token: the return URL is still
			// refused and nothing is cleared.
			value := env.signIn(t)
			token := env.login.logoutToken(value)
			for name, do := range map[string]func() (*http.Response, string){
				"in body": func() (*http.Response, string) {
					return env.post(t, LogoutPath, url.Values{"csrf": {token}, "rd": {raw}})
				},
				"in query": func() (*http.Response, string) {
					return env.post(t, LogoutPath+"?rd="+url.QueryEscape(raw), url.Values{"csrf": {token}})
				},
			} {
				resp, body := do()
				check(t, resp, body)
				assert.Nil(t, cookieNamed(resp, "_riskgate"), "%s: nothing cleared", name)
			}
		})
	}
}

// signIn puts a fresh valid session cookie in the jar, as a finished
// sign-in would, and returns its value.
func (env *loginEnv) signIn(t *testing.T) string {
	t.Helper()
	value, err := env.sessions.Encode(env.sessions.NewSession(testAlice, testAlice, []string{"staff"}))
	require.NoError(t, err)
	u, err := url.Parse(env.proxy.URL)
	require.NoError(t, err)
	env.jar.SetCookies(u, []*http.Cookie{{Name: "_riskgate", Value: value, Path: "/"}})
	return value
}

// post submits form to u (a path on the proxy) as a browser form would.
func (env *loginEnv) post(t *testing.T, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, env.proxy.URL+u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	resp, err := env.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// csrfField matches the confirmation page's hidden token field.
var csrfField = regexp.MustCompile(`name="csrf" value="([A-Za-z0-9_-]+)"`)

// confirmLogout fetches the confirmation page for rd and checks that it
// only asks: no cookie is cleared. It returns the page's token.
func (env *loginEnv) confirmLogout(t *testing.T, rd string) (*http.Response, string) {
	t.Helper()
	resp, body := env.get(t, LogoutPath+"?rd="+url.QueryEscape(rd))
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Nil(t, cookieNamed(resp, "_riskgate"), "a GET signs nobody out")
	assert.Contains(t, body, "<h1>Sign out of your organization?</h1>")
	assert.Contains(t, body, `<form method="post" action="/.riskgate/logout">`)
	assert.Contains(t, body, `<input type="hidden" name="rd" value="`+rd+`">`)
	assert.Contains(t, body, `<a class="btn secondary" href="`+rd+`">Cancel</a>`)
	m := csrfField.FindStringSubmatch(body)
	require.Len(t, m, 2, body)
	return resp, m[1]
}

func TestLogout(t *testing.T) {
	t.Run("end_session_endpoint", func(t *testing.T) {
		env := newLoginEnv(t, nil)
		resp, _ := env.get(t, env.authorize(t, env.startLogin(t, "/mail")).String())
		require.NotNil(t, cookieNamed(resp, "_riskgate"))

		resp, token := env.confirmLogout(t, "/bye")
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"),
			"; form-action 'self' "+env.iss.URL+" "+env.proxy.URL+"; ", "the POST's redirects to the issuer and back are allowed")
		_, body := env.get(t, "/mail")
		assert.Contains(t, body, "hello "+testAlice, "still signed in after the GET")

		resp, _ = env.post(t, LogoutPath, url.Values{"csrf": {token}, "rd": {"/bye"}})
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
		cleared := cookieNamed(resp, "_riskgate")
		require.NotNil(t, cleared)
		assert.Negative(t, cleared.MaxAge)
		end := location(t, resp)
		assert.Equal(t, env.iss.URL+"/logout", end.Scheme+"://"+end.Host+end.Path)
		assert.Equal(t, "riskgate", end.Query().Get("client_id"))
		assert.Equal(t, env.proxy.URL+"/bye", end.Query().Get("post_logout_redirect_uri"))

		resp, _ = env.get(t, end.String())
		assert.Equal(t, env.proxy.URL+"/bye", location(t, resp).String())
		require.Len(t, env.iss.Logouts(), 1)
		resp, _ = env.get(t, "/mail")
		assert.Equal(t, LoginPath, location(t, resp).Path, "signed out")
	})
	t.Run("without end_session_endpoint", func(t *testing.T) {
		var iss string
		env := newLoginEnv(t, func(o *LoginOptions) {
			iss = o.Auth.Issuer
			o.Provider = (&oidc.ProviderConfig{IssuerURL: iss, AuthURL: iss + "/authorize",
				TokenURL: iss + "/token", JWKSURL: iss + "/jwks", Algorithms: []string{"RS256"}}).
				NewProvider(oidc.ClientContext(context.Background(), o.Client))
		})
		resp, body := env.get(t, env.authorize(t, env.startLogin(t, "/mail")).String())
		require.Equal(t, http.StatusFound, resp.StatusCode, body)
		resp, token := env.confirmLogout(t, "/")
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "; form-action 'self'; ")
		resp, _ = env.post(t, LogoutPath, url.Values{"csrf": {token}})
		assert.Equal(t, "/", resp.Header.Get("Location"), "rd defaults to /")
		assert.Negative(t, cookieNamed(resp, "_riskgate").MaxAge)
	})
	t.Run("without a session", func(t *testing.T) {
		env := newLoginEnv(t, nil)
		resp, body := env.get(t, LogoutPath+"?rd=%2Fbye")
		assert.Equal(t, "/bye", resp.Header.Get("Location"), "nothing to confirm")
		assert.NotContains(t, body, "<form")
		assert.Nil(t, cookieNamed(resp, "_riskgate"))
		resp, _ = env.post(t, LogoutPath, url.Values{"rd": {"/bye"}})
		assert.Equal(t, "/bye", resp.Header.Get("Location"), "already signed out: no end_session on a cross-site say-so")
		assert.Nil(t, cookieNamed(resp, "_riskgate"))
		assert.Empty(t, env.iss.Logouts())
	})
}

// TestLogoutCSRF checks that only a POST carrying the token of the
// confirmation page for this very session cookie signs out.
func TestLogoutCSRF(t *testing.T) {
	env := newLoginEnv(t, nil)
	other := env.login.logoutToken("some other session cookie")
	auth := testAuth("ffffffffffffffffffffffffffffffff")
	auth.Issuer, auth.ClientSecret, auth.RedirectURL = env.iss.URL, testClientSecret, env.proxy.URL+CallbackPath
	foreignSessions, err := NewSessions(auth, env.clock.Now)
	require.NoError(t, err)
	foreign, err := NewLogin(t.Context(), LoginOptions{Auth: auth, Client: env.iss.Server.Client(), Sessions: foreignSessions})
	require.NoError(t, err)

	tests := []struct {
		name string
		path string
		form func(value string) url.Values
	}{
		{"no token", LogoutPath, func(string) url.Values { return url.Values{"rd": {"/bye"}} }},
		{"empty token", LogoutPath, func(string) url.Values { return url.Values{"csrf": {""}} }},
		{"garbage token", LogoutPath, func(string) url.Values { return url.Values{"csrf": {"not-a-token!"}} }},
		{"truncated token", LogoutPath, func(v string) url.Values { return url.Values{"csrf": {env.login.logoutToken(v)[:20]}} }},
		{"another session's token", LogoutPath, func(string) url.Values { return url.Values{"csrf": {other}} }},
		{"token under another secret", LogoutPath, func(v string) url.Values { return url.Values{"csrf": {foreign.logoutToken(v)}} }},
		{"token in the query", "", func(string) url.Values { return url.Values{} }},
		{"the cookie value as token", LogoutPath, func(v string) url.Values { return url.Values{"csrf": {v}} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			value := env.signIn(t)
			path := tc.path
			if path == "" {
				path = LogoutPath + "?csrf=" + env.login.logoutToken(value)
			}
			resp, body := env.post(t, path, tc.form(value))
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			assert.Empty(t, resp.Header.Get("Location"))
			assert.Nil(t, cookieNamed(resp, "_riskgate"), "nothing cleared")
			assert.Contains(t, body, "You are still signed in.")
			assert.Contains(t, body, `href="/.riskgate/logout?rd=`)
			_, body = env.get(t, "/mail")
			assert.Contains(t, body, "hello "+testAlice, "still signed in")
		})
	}
	assert.Empty(t, env.iss.Logouts())

	t.Run("a cross-site GET only asks", func(t *testing.T) {
		env.signIn(t)
		for range 3 {
			env.confirmLogout(t, "/")
		}
		_, body := env.get(t, "/mail")
		assert.Contains(t, body, "hello "+testAlice)
	})
	t.Run("rotated secret", func(t *testing.T) {
		// A page served before a secret rotation still signs out after it.
		rotated := testAuth("ffffffffffffffffffffffffffffffff", testSecret)
		rotated.Issuer, rotated.ClientSecret, rotated.RedirectURL = env.iss.URL, testClientSecret, env.proxy.URL+CallbackPath
		rs, err := NewSessions(rotated, env.clock.Now)
		require.NoError(t, err)
		l, err := NewLogin(t.Context(), LoginOptions{Auth: rotated, Client: env.iss.Server.Client(), Sessions: rs})
		require.NoError(t, err)
		assert.True(t, l.validLogoutToken("v", env.login.logoutToken("v")))
		assert.False(t, env.login.validLogoutToken("v", l.logoutToken("v")), "a dropped secret's tokens no longer work")
	})
	t.Run("oversized form", func(t *testing.T) {
		value := env.signIn(t)
		resp, _ := env.post(t, LogoutPath, url.Values{"csrf": {env.login.logoutToken(value)}, "pad": {strings.Repeat("x", maxLogoutForm)}})
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Nil(t, cookieNamed(resp, "_riskgate"))
	})
}

func TestLoginUserInfo(t *testing.T) {
	env := newLoginEnv(t, func(o *LoginOptions) { o.UserInfo = true })
	env.iss.EditIDTokens(func(c map[string]any) { delete(c, "groups") })
	resp, body := env.get(t, env.authorize(t, env.startLogin(t, "/mail")).String())
	require.Equal(t, http.StatusFound, resp.StatusCode, body)
	_, body = env.get(t, "/mail")
	assert.Contains(t, body, "groups=[staff mail-users]", "groups from the userinfo endpoint")
}

func TestLoginMethodsAndPaths(t *testing.T) {
	env := newLoginEnv(t, nil)
	resp, err := env.client.Post(env.proxy.URL+LoginPath, "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, env.proxy.URL+LogoutPath, nil)
	require.NoError(t, err)
	resp, err = env.client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "GET, POST", resp.Header.Get("Allow"))
	resp, _ = env.get(t, "/.riskgate/nothing")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}
