package e2e_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/riskgate/riskgate/e2e/dextest"
)

const redirectURI = "http://127.0.0.1:1/callback" // never dialled: DexLogin stops before it

func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar}
}

// TestDexIsReal drives Dex's own login pages through the authorization code
// flow with PKCE and verifies the ID token it issues, with and without its
// approval page.
func TestDexIsReal(t *testing.T) {
	for _, tc := range []struct {
		name         string
		showApproval bool
	}{
		{"approval skipped", false},
		{"approval shown", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dex := dextest.Start(t, dextest.Options{
				ShowApproval: tc.showApproval,
				Clients:      []dextest.Client{{ID: "riskgate", Secret: "riskgate-secret", RedirectURIs: []string{redirectURI}}},
			})
			provider, err := oidc.NewProvider(t.Context(), dex.URL)
			require.NoError(t, err, "discovery")
			var disc struct {
				PKCE []string `json:"code_challenge_methods_supported"`
			}
			require.NoError(t, provider.Claims(&disc))
			assert.Contains(t, disc.PKCE, "S256")

			cfg := oauth2.Config{
				ClientID: "riskgate", ClientSecret: "riskgate-secret", RedirectURL: redirectURI,
				Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"},
			}
			verifier := oauth2.GenerateVerifier()
			authURL := cfg.AuthCodeURL("state-1", oidc.Nonce("nonce-1"), oauth2.S256ChallengeOption(verifier))

			redirect, err := dextest.DexLogin(browser(t), authURL, dextest.DefaultEmail, dextest.DefaultPassword)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(redirect, redirectURI+"?"), redirect)
			u, err := url.Parse(redirect)
			require.NoError(t, err)
			assert.Equal(t, "state-1", u.Query().Get("state"))

			_, err = cfg.Exchange(t.Context(), u.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
			require.Error(t, err, "Dex must check the PKCE verifier")

			// A fresh login gives a fresh code to redeem properly.
			redirect, err = dextest.DexLogin(browser(t), authURL, dextest.DefaultEmail, dextest.DefaultPassword)
			require.NoError(t, err)
			u, err = url.Parse(redirect)
			require.NoError(t, err)
			tok, err := cfg.Exchange(t.Context(), u.Query().Get("code"), oauth2.VerifierOption(verifier))
			require.NoError(t, err)
			rawID, ok := tok.Extra("id_token").(string)
			require.True(t, ok)
			idt, err := provider.Verifier(&oidc.Config{ClientID: "riskgate"}).Verify(t.Context(), rawID)
			require.NoError(t, err)
			assert.Equal(t, "nonce-1", idt.Nonce)
			var claims struct {
				Email  string   `json:"email"`
				Name   string   `json:"name"`
				Groups []string `json:"groups"`
			}
			require.NoError(t, idt.Claims(&claims))
			assert.Equal(t, dextest.DefaultEmail, claims.Email)
			assert.Equal(t, "Alice", claims.Name)
			assert.Equal(t, []string{"staff"}, claims.Groups)
		})
	}
}

func TestDexLoginWrongPassword(t *testing.T) {
	dex := dextest.Start(t, dextest.Options{})
	dex.AddClient(t, dextest.Client{ID: "late", Secret: "late-secret", RedirectURIs: []string{redirectURI}})
	provider, err := oidc.NewProvider(t.Context(), dex.URL)
	require.NoError(t, err)
	cfg := oauth2.Config{ClientID: "late", ClientSecret: "late-secret", RedirectURL: redirectURI,
		Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID}}
	authURL := cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))

	_, err = dextest.DexLogin(browser(t), authURL, dextest.DefaultEmail, "wrong")
	require.ErrorContains(t, err, "refused the password")

	// Dex enforces PKCE: the relying party gets an error, not a code.
	redirect, err := dextest.DexLogin(browser(t), cfg.AuthCodeURL("s"), dextest.DefaultEmail, dextest.DefaultPassword)
	require.NoError(t, err)
	u, err := url.Parse(redirect)
	require.NoError(t, err)
	assert.Equal(t, "invalid_request", u.Query().Get("error"))
	assert.False(t, u.Query().Has("code"))
}
