// Package oidctest is a real OIDC issuer for tests: it serves discovery and a
// JWKS over httptest and signs RS256 tokens with a fresh key.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is a running test issuer.
type Issuer struct {
	Server *httptest.Server
	URL    string
	Key    *rsa.PrivateKey
	KeyID  string
	flow   *flow

	mu     sync.Mutex // guards signer and jwks
	signer jose.Signer
	jwks   jwks
}

// New starts an issuer; it is closed with the test.
func New(t testing.TB) *Issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &Issuer{Key: key, KeyID: "test-key-1", flow: newFlow()}
	iss.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: iss.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.URL,
			"authorization_endpoint":                iss.URL + "/authorize",
			"token_endpoint":                        iss.URL + "/token",
			"jwks_uri":                              iss.URL + "/jwks",
			"userinfo_endpoint":                     iss.URL + "/userinfo",
			"end_session_endpoint":                  iss.URL + "/logout",
			"code_challenge_methods_supported":      []string{"S256"},
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	iss.jwks.keys = []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: iss.KeyID, Algorithm: "RS256", Use: "sig"}}
	mux.HandleFunc("GET /jwks", iss.serveJWKS)
	iss.registerFlow(mux)
	iss.Server = httptest.NewServer(mux)
	iss.URL = iss.Server.URL
	t.Cleanup(iss.Server.Close)
	return iss
}

// Claims returns standard claims for user, valid for an hour, audience aud.
func (iss *Issuer) Claims(user, aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":   iss.URL,
		"sub":   "sub-" + user,
		"aud":   aud,
		"email": user,
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
}

// Sign signs claims as an RS256 JWT with the issuer's key.
func (iss *Issuer) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	tok, err := jwt.Signed(iss.currentSigner()).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sign is Sign for the issuer's own handlers, which have no testing.TB.
func (iss *Issuer) sign(claims map[string]any) string {
	tok, _ := jwt.Signed(iss.currentSigner()).Claims(claims).Serialize()
	return tok
}
