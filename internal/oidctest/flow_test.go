package oidctest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTokenEndpointChecks(t *testing.T) {
	iss := New(t)
	const redirect = "http://app.example/cb"
	iss.AddClient(Client{ID: "app", Secret: "s", RedirectURIs: []string{redirect}})
	iss.AddUser("alice@corp.example", map[string]any{"groups": []string{"staff"}})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	const verifier = "a-verifier-that-is-long-enough-for-rfc-7636-section-4-1"
	sum := sha256.Sum256([]byte(verifier))
	code := func(t *testing.T) string {
		q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect}, "state": {"st"},
			"nonce": {"n1"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
		resp, err := noFollow.Get(iss.URL + "/authorize?" + q.Encode())
		require.NoError(t, err)
		resp.Body.Close()
		loc, err := resp.Location()
		require.NoError(t, err)
		assert.Equal(t, "st", loc.Query().Get("state"))
		return loc.Query().Get("code")
	}
	exchange := func(t *testing.T, secret string, form url.Values) (int, map[string]any) {
		req, err := http.NewRequest(http.MethodPost, iss.URL+"/token", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", secret)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body
	}
	form := func(c, redirectURI, v string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI}, "code_verifier": {v}}
	}

	c := code(t)
	status, body := exchange(t, "s", form(c, redirect, verifier))
	require.Equal(t, http.StatusOK, status, body)
	assert.NotEmpty(t, body["id_token"])
	status, body = exchange(t, "s", form(c, redirect, verifier))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", body["error"], "a code works once")

	for name, tc := range map[string]struct {
		secret, redirect, verifier, want string
	}{
		"wrong secret":       {"x", redirect, verifier, "invalid_client"},
		"wrong redirect_uri": {"s", "http://evil.example/cb", verifier, "invalid_grant"},
		"wrong verifier":     {"s", redirect, verifier + "x", "invalid_grant"},
		"no verifier":        {"s", redirect, "", "invalid_grant"},
	} {
		t.Run(name, func(t *testing.T) {
			_, body := exchange(t, tc.secret, form(code(t), tc.redirect, tc.verifier))
			assert.Equal(t, tc.want, body["error"])
		})
	}
}
