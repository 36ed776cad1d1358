package devidp

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const cryptoSHA256 = crypto.SHA256

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b64(b)
}

// subject is the user's stable, opaque "sub": the same email always gives the
// same subject, for the life of every devidp instance.
func subject(email string) string {
	h := sha256.Sum256([]byte(strings.ToLower(email)))
	return "devidp-" + b64(h[:12])
}

// userClaims are the claims that describe u, for tokens and userinfo.
func userClaims(u User) map[string]any {
	c := map[string]any{
		"sub":            subject(u.Email),
		"email":          u.Email,
		"email_verified": true,
		"name":           u.Name,
		"groups":         append([]string{}, u.Groups...),
	}
	if u.DeviceID != "" {
		c["deviceid"] = u.DeviceID
	}
	return c
}

// mint signs the claims of user u for audience aud, valid for ttl, with
// extra claims added.
func (s *Server) mint(u User, aud string, ttl time.Duration, extra map[string]any) (string, error) {
	now := s.now()
	claims := userClaims(u)
	claims["iss"] = s.issuer
	claims["aud"] = aud
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(ttl).Unix()
	for k, v := range extra {
		claims[k] = v
	}
	tok, err := jwt.Signed(s.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("devidp: sign token: %w", err)
	}
	return tok, nil
}

// Token mints a bearer token (an RS256 JWT with the same claims as an ID
// token) for the demo user with this email, audience aud, valid for ttl. The
// demo prints it in a curl example, as a native client would send it.
func (s *Server) Token(email, aud string, ttl time.Duration) (string, error) {
	u, ok := s.byEmail[strings.ToLower(email)]
	if !ok {
		return "", fmt.Errorf("devidp: token: unknown user %q", email)
	}
	if aud == "" {
		return "", errors.New("devidp: token: empty audience")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("devidp: token: ttl %v: want positive", ttl)
	}
	return s.mint(u, aud, ttl, nil)
}

// atHash is the ID token's at_hash: the left half of the SHA-256 of the
// access token (OpenID Connect Core 1.0 section 3.1.3.6).
func atHash(accessToken string) string {
	h := sha256.Sum256([]byte(accessToken))
	return b64(h[:len(h)/2])
}

// verified are the claims of a token this server signed.
type verified struct {
	jwt.Claims
	Email string `json:"email"`
}

// verify checks that raw was signed by this server for this issuer and, when
// checkExpiry, that it has not expired.
func (s *Server) verify(raw string, checkExpiry bool) (verified, error) {
	var v verified
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return v, fmt.Errorf("parse: %w", err)
	}
	if err := tok.Claims(&s.key.PublicKey, &v); err != nil {
		return v, fmt.Errorf("signature: %w", err)
	}
	exp := jwt.Expected{Issuer: s.issuer}
	if checkExpiry {
		exp.Time = s.now()
	} else {
		exp.Time = time.Unix(0, 0)
		v.Expiry = nil
		v.NotBefore = nil
		v.IssuedAt = nil
	}
	if err := v.ValidateWithLeeway(exp, time.Minute); err != nil {
		return v, err
	}
	return v, nil
}
