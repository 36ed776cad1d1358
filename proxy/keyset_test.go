package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/internal/oidctest"
)

func newTestKeySet(t *testing.T, url string, client *http.Client, clk *clock) *KeySet {
	t.Helper()
	ks, err := NewKeySet(KeySetOptions{URL: url, Client: client, Now: clk.now,
		MinInterval: 30 * time.Second, RefreshInterval: time.Hour})
	require.NoError(t, err)
	return ks
}

// signJWT signs claims with key under alg, naming kid ("" for none).
func signJWT(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	var signingKey any = key
	if kid != "" {
		signingKey = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signingKey}, opts)
	require.NoError(t, err)
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	require.NoError(t, err)
	return tok
}

func TestKeySetVerifies(t *testing.T) {
	iss := oidctest.New(t)
	clk := &clock{t: time.Now()}
	ks := newTestKeySet(t, iss.URL+"/jwks", iss.Server.Client(), clk)
	ctx := context.Background()
	claims := iss.Claims(alice, "riskgate")

	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"issuer key", iss.Sign(t, claims), true},
		{"issuer key without kid", signJWT(t, jose.RS256, iss.Key, "", claims), true},
		{"issuer key under PS256", signJWT(t, jose.PS256, iss.Key, iss.KeyID, claims), false}, // the JWK says RS256
		{"forged under the issuer's kid", iss.SignWithKey(t, iss.KeyID, claims), false},
		{"malformed", "a.b.c", false},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload, err := ks.VerifySignature(ctx, tc.token)
			if !tc.ok {
				assert.Error(t, err)
				assert.Nil(t, payload)
				return
			}
			require.NoError(t, err)
			var got map[string]any
			require.NoError(t, json.Unmarshal(payload, &got))
			assert.Equal(t, alice, got["email"])
		})
	}
	assert.Equal(t, 1, iss.JWKSHits(), "a known kid with a bad signature triggers no fetch")
}

func TestKeySetRotation(t *testing.T) {
	iss := oidctest.New(t)
	clk := &clock{t: time.Now()}
	ks := newTestKeySet(t, iss.URL+"/jwks", iss.Server.Client(), clk)
	ctx := context.Background()
	claims := iss.Claims(alice, "riskgate")
	oldTok := iss.Sign(t, claims)
	_, err := ks.VerifySignature(ctx, oldTok)
	require.NoError(t, err)
	require.Equal(t, 1, iss.JWKSHits())

	iss.Rotate(t, "test-key-2")
	newTok := iss.Sign(t, claims)
	clk.set(clk.now().Add(29 * time.Second))
	_, err = ks.VerifySignature(ctx, newTok)
	assert.ErrorContains(t, err, `key id "test-key-2" not in the key set`, "within the minimum interval")
	assert.Equal(t, 1, iss.JWKSHits(), "no fetch within the minimum interval")

	clk.set(clk.now().Add(time.Second))
	_, err = ks.VerifySignature(ctx, newTok)
	require.NoError(t, err, "the rotated key is picked up after the interval")
	assert.Equal(t, 2, iss.JWKSHits())
	_, err = ks.VerifySignature(ctx, oldTok)
	require.NoError(t, err, "the old key is still published")
	assert.Equal(t, 2, iss.JWKSHits())
}

func TestKeySetPeriodicRefresh(t *testing.T) {
	iss := oidctest.New(t)
	clk := &clock{t: time.Now()}
	ks := newTestKeySet(t, iss.URL+"/jwks", iss.Server.Client(), clk)
	tok := iss.Sign(t, iss.Claims(alice, "riskgate"))
	verify := func() {
		t.Helper()
		_, err := ks.VerifySignature(context.Background(), tok)
		require.NoError(t, err)
	}
	verify()
	clk.set(clk.now().Add(time.Hour - time.Second))
	verify()
	assert.Equal(t, 1, iss.JWKSHits())
	clk.set(clk.now().Add(time.Second))
	verify()
	assert.Equal(t, 2, iss.JWKSHits(), "keys are fetched again after the refresh interval")
	verify()
	assert.Equal(t, 2, iss.JWKSHits())
}

func TestKeySetKeepsKeysWhenFetchFails(t *testing.T) {
	iss := oidctest.New(t)
	clk := &clock{t: time.Now()}
	ks := newTestKeySet(t, iss.URL+"/jwks", iss.Server.Client(), clk)
	ctx := context.Background()
	claims := iss.Claims(alice, "riskgate")
	tok := iss.Sign(t, claims)
	_, err := ks.VerifySignature(ctx, tok)
	require.NoError(t, err)

	iss.SetJWKSFailing(true)
	clk.set(clk.now().Add(2 * time.Hour))
	_, err = ks.VerifySignature(ctx, tok)
	require.NoError(t, err, "a failed periodic refresh keeps the old keys")
	assert.Equal(t, 2, iss.JWKSHits())

	unknown := iss.SignWithKey(t, "other-kid", claims)
	_, err = ks.VerifySignature(ctx, unknown)
	assert.Error(t, err)
	assert.Equal(t, 2, iss.JWKSHits(), "a failing provider is not asked again within the interval")
	_, err = ks.VerifySignature(ctx, tok)
	require.NoError(t, err)

	clk.set(clk.now().Add(30 * time.Second))
	_, err = ks.VerifySignature(ctx, unknown)
	assert.Error(t, err)
	assert.Equal(t, 3, iss.JWKSHits())
	_, err = ks.VerifySignature(ctx, tok)
	require.NoError(t, err, "a failed fetch for an unknown kid keeps the old keys")

	iss.SetJWKSFailing(false)
	iss.Rotate(t, "test-key-2")
	clk.set(clk.now().Add(30 * time.Second))
	_, err = ks.VerifySignature(ctx, iss.Sign(t, claims))
	require.NoError(t, err, "recovered")
	assert.Equal(t, 4, iss.JWKSHits())
}

func TestKeySetFirstFetchFails(t *testing.T) {
	iss := oidctest.New(t)
	iss.SetJWKSFailing(true)
	clk := &clock{t: time.Now()}
	ks := newTestKeySet(t, iss.URL+"/jwks", iss.Server.Client(), clk)
	tok := iss.Sign(t, iss.Claims(alice, "riskgate"))
	for range 3 {
		_, err := ks.VerifySignature(context.Background(), tok)
		assert.Error(t, err)
	}
	assert.Equal(t, 1, iss.JWKSHits())
	iss.SetJWKSFailing(false)
	clk.set(clk.now().Add(30 * time.Second))
	_, err := ks.VerifySignature(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, 2, iss.JWKSHits())
}

// TestKeySetMergesFetches holds the first fetch at the server until the
// other verifications have started: they must wait for it, not fetch
// again nor fail as rate-limited.
func TestKeySetMergesFetches(t *testing.T) {
	iss := oidctest.New(t)
	var hits atomic.Int32
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
		resp, err := iss.Server.Client().Get(iss.URL + "/jwks")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(gate.Close)
	ks := newTestKeySet(t, gate.URL, gate.Client(), &clock{t: time.Now()})
	tok := iss.Sign(t, iss.Claims(alice, "riskgate"))

	const n = 50
	var wg sync.WaitGroup
	var started atomic.Int32
	errs := make(chan error, n)
	verify := func() {
		defer wg.Done()
		started.Add(1)
		_, err := ks.VerifySignature(context.Background(), tok)
		errs <- err
	}
	wg.Add(1)
	go verify()
	<-arrived
	wg.Add(n - 1)
	for range n - 1 {
		go verify()
	}
	require.Eventually(t, func() bool { return started.Load() == n }, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, int32(1), hits.Load())
}

func TestKeySetRefusesNoneAndHMAC(t *testing.T) {
	iss := oidctest.New(t)
	ks := newTestKeySet(t, iss.URL+"/jwks", iss.Server.Client(), &clock{t: time.Now()})
	claims := iss.Claims(alice, "riskgate")
	// The classic confusion attack: the issuer's public key as HMAC secret.
	pubDER, err := x509.MarshalPKIXPublicKey(&iss.Key.PublicKey)
	require.NoError(t, err)
	tests := []struct{ name, token string }{
		{"alg none", iss.Unsigned(t, claims)},
		{"HS256 with the public key", signJWT(t, jose.HS256, pubDER, iss.KeyID, claims)},
		{"HS256 without kid", signJWT(t, jose.HS256, pubDER, "", claims)},
		{"HS512", signJWT(t, jose.HS512, make([]byte, 64), iss.KeyID, claims)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ks.VerifySignature(context.Background(), tc.token)
			assert.Error(t, err)
		})
	}
	assert.Zero(t, iss.JWKSHits(), "refused before any key is looked up")
}

func TestKeySetIgnoresUnusableKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	secret := make([]byte, 32)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &rsaKey.PublicKey, KeyID: "rsa", Use: "sig"},
		{Key: &ecKey.PublicKey, KeyID: "ec", Algorithm: "ES256"},
		{Key: edPub, KeyID: "ed"},
		{Key: secret, KeyID: "oct"},
		{Key: &smallRSA.PublicKey, KeyID: "small"},
		{Key: &rsaKey.PublicKey, KeyID: "enc", Use: "enc"},
		{Key: &rsaKey.PublicKey, KeyID: "oaep", Algorithm: "RSA-OAEP"},
	}}
	body, err := json.Marshal(set)
	require.NoError(t, err)
	// A key of an unknown type must not lock out the others.
	var doc map[string][]any
	require.NoError(t, json.Unmarshal(body, &doc))
	doc["keys"] = append(doc["keys"], map[string]any{"kty": "XYZ", "kid": "weird"})
	body, err = json.Marshal(doc)
	require.NoError(t, err)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	ks := newTestKeySet(t, srv.URL, srv.Client(), &clock{t: time.Now()})
	claims := map[string]any{"sub": "x"}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"rsa", signJWT(t, jose.RS256, rsaKey, "rsa", claims), true},
		{"ec", signJWT(t, jose.ES256, ecKey, "ec", claims), true},
		{"ed25519", signJWT(t, jose.EdDSA, edKey, "ed", claims), true},
		{"oct key as HMAC", signJWT(t, jose.HS256, secret, "oct", claims), false},
		{"rsa key under its enc kid", signJWT(t, jose.RS256, rsaKey, "enc", claims), false},
		{"rsa key under its RSA-OAEP kid", signJWT(t, jose.RS256, rsaKey, "oaep", claims), false},
		{"1024-bit rsa", signJWT(t, jose.RS256, smallRSA, "small", claims), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ks.VerifySignature(context.Background(), tc.token)
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

func TestNewKeySetErrors(t *testing.T) {
	for _, u := range []string{"", "/jwks", "ftp://idp.example/jwks", "http://"} {
		t.Run(u, func(t *testing.T) {
			_, err := NewKeySet(KeySetOptions{URL: u})
			assert.Error(t, err)
		})
	}
}
