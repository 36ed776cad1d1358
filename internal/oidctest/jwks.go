package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// jwks is the issuer's published key set and what tests observe of it.
// Its mutex also guards Issuer.signer, which Rotate replaces while the
// issuer's handlers may be signing.
type jwks struct {
	keys    []jose.JSONWebKey
	hits    int
	failing bool
}

// serveJWKS answers GET /jwks: the published keys, or 500 while failing.
func (iss *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	iss.mu.Lock()
	iss.jwks.hits++
	failing := iss.jwks.failing
	set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), iss.jwks.keys...)}
	iss.mu.Unlock()
	if failing {
		http.Error(w, "jwks unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// JWKSHits is how many times the JWKS was requested, failed answers
// included.
func (iss *Issuer) JWKSHits() int {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.jwks.hits
}

// SetJWKSFailing makes GET /jwks answer 500 (failing true) or the key set
// again (false).
func (iss *Issuer) SetJWKSFailing(failing bool) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.jwks.failing = failing
}

// Rotate generates a new RS256 key with id kid, publishes it next to the
// keys already published (as an identity provider does during a key
// rotation) and makes Sign and the login flow sign with it from now on.
// Key and KeyID keep naming the first key.
func (iss *Issuer) Rotate(t testing.TB, kid string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.jwks.keys = append(iss.jwks.keys, jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
	iss.signer = signer
}

// currentSigner is the signer Sign uses.
func (iss *Issuer) currentSigner() jose.Signer {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.signer
}
