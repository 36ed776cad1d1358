// Package proxy is riskgate's HTTP side: the access handler, authentication
// (bearer tokens and browser sessions), device identification, the block
// page and the admin endpoints.
package proxy

import (
	"errors"
	"net/http"
	"time"
)

// Identity is an authenticated user.
type Identity struct {
	// User is the value of auth.user_claim; Email the "email" claim.
	User   string
	Email  string
	Groups []string
	// Claims are the token's claims, for device claims.
	Claims map[string]any
	// Expiry is when the credential stops being valid.
	Expiry time.Time
	// Via names the authenticator: "bearer" or "session".
	Via string
}

// ErrNoCredentials means "not mine": the request carries no credential this
// authenticator understands, and the next one should be tried.
var ErrNoCredentials = errors.New("proxy: no credentials")

// Authenticator finds the identity of a request. It returns
// ErrNoCredentials when the request carries none of its credentials, and
// another error when it carries a bad one.
type Authenticator interface {
	Authenticate(r *http.Request) (*Identity, error)
}
