package devidp

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// tokenError is an error response of the token endpoint (RFC 6749 section
// 5.2).
func tokenError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="devidp"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// authenticateClient checks client_secret_basic or client_secret_post
// (RFC 6749 section 2.3.1).
func (s *Server) authenticateClient(r *http.Request) (Client, bool) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// The Basic credentials are form-urlencoded first (RFC 6749 2.3.1).
		if v, err := url.QueryUnescape(id); err == nil {
			id = v
		}
		if v, err := url.QueryUnescape(secret); err == nil {
			secret = v
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c, ok := s.clients[id]
	if !ok || secret == "" {
		return Client{}, false
	}
	return c, subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) == 1
}

// token redeems an authorization code for an ID token and an access token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "bad form: "+err.Error())
		return
	}
	c, ok := s.authenticateClient(r)
	if !ok {
		s.log.Warn("devidp: token refused", "error", "invalid_client")
		tokenError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "authorization_code" {
		s.log.Warn("devidp: token refused", "client_id", c.ID, "error", "unsupported_grant_type", "grant_type", gt)
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code is supported")
		return
	}
	code := r.PostForm.Get("code")
	// A code is spent by its first presentation, right or wrong, so that
	// a stolen code cannot be tried twice (RFC 6749 section 4.1.2).
	s.mu.Lock()
	g, found := s.codes[code]
	delete(s.codes, code)
	s.mu.Unlock()

	now := s.now()
	var refusal string
	switch verifier := r.PostForm.Get("code_verifier"); {
	case !found:
		refusal = "unknown, expired or already used code"
	case !now.Before(g.Expires):
		refusal = "code expired"
	case g.ClientID != c.ID:
		refusal = "code was issued to another client"
	case r.PostForm.Get("redirect_uri") != g.RedirectURI:
		refusal = "redirect_uri does not match the authorization request"
	case len(verifier) < 43 || len(verifier) > 128 || !isUnreserved(verifier):
		refusal = "missing or malformed code_verifier"
	case !pkceMatches(verifier, g.CodeChallenge):
		refusal = "code_verifier does not match the code_challenge"
	}
	if refusal != "" {
		s.log.Warn("devidp: token refused", "client_id", c.ID, "error", "invalid_grant", "description", refusal)
		tokenError(w, http.StatusBadRequest, "invalid_grant", refusal)
		return
	}
	u := s.byEmail[strings.ToLower(g.Email)]
	access, err := s.mint(u, c.ID, s.tokenTTL, map[string]any{"scope": g.Scope})
	if err != nil {
		s.log.Error("devidp: mint access token", "err", err)
		tokenError(w, http.StatusInternalServerError, "server_error", "cannot sign token")
		return
	}
	extra := map[string]any{"at_hash": atHash(access), "auth_time": g.AuthTime.Unix()}
	if g.Nonce != "" {
		extra["nonce"] = g.Nonce
	}
	id, err := s.mint(u, c.ID, s.tokenTTL, extra)
	if err != nil {
		s.log.Error("devidp: mint id token", "err", err)
		tokenError(w, http.StatusInternalServerError, "server_error", "cannot sign token")
		return
	}
	s.log.Info("devidp: tokens issued", "client_id", c.ID, "user", u.Email)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   int(s.tokenTTL.Seconds()),
		"id_token":     id,
		"scope":        g.Scope,
	})
}

// pkceMatches checks BASE64URL(SHA256(verifier)) == challenge (RFC 7636
// section 4.6).
func pkceMatches(verifier, challenge string) bool {
	h := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(b64(h[:])), []byte(challenge)) == 1
}

// userinfo returns the claims of the bearer of an access token
// (OpenID Connect Core 1.0 section 5.3).
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="devidp"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "bearer token required"})
		return
	}
	v, err := s.verify(strings.TrimSpace(raw), true)
	u, known := s.byEmail[strings.ToLower(v.Email)]
	if err != nil || !known {
		w.Header().Set("WWW-Authenticate", `Bearer realm="devidp", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "invalid or expired token"})
		return
	}
	writeJSON(w, http.StatusOK, userClaims(u))
}

// logout is the end_session_endpoint (OpenID Connect RP-Initiated Logout
// 1.0). devidp keeps no session, so there is nothing to clear: it only
// redirects to a post_logout_redirect_uri registered for the client, named
// by client_id or by the audience of id_token_hint.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, "error", map[string]any{"Title": "Bad sign-out request", "Code": "invalid_request", "Message": err.Error()})
		return
	}
	clientID := r.Form.Get("client_id")
	if hint := r.Form.Get("id_token_hint"); hint != "" {
		// Expired hints are fine: logging out usually happens after expiry.
		v, err := s.verify(hint, false)
		if err != nil || len(v.Audience) != 1 || (clientID != "" && v.Audience[0] != clientID) {
			s.render(w, http.StatusBadRequest, "error", map[string]any{"Title": "Bad sign-out request", "Code": "invalid_request", "Message": "id_token_hint is not a token of this issuer for this client"})
			return
		}
		clientID = v.Audience[0]
	}
	target := r.Form.Get("post_logout_redirect_uri")
	if target == "" {
		s.render(w, http.StatusOK, "loggedout", map[string]any{"Issuer": s.issuer})
		return
	}
	c, ok := s.clients[clientID]
	if !ok || !slices.Contains(c.PostLogoutRedirectURIs, target) {
		s.log.Warn("devidp: logout redirect refused", "client_id", clientID, "post_logout_redirect_uri", target)
		s.render(w, http.StatusBadRequest, "error", map[string]any{"Title": "Bad sign-out request", "Code": "invalid_request", "Message": "post_logout_redirect_uri is not registered for this client"})
		return
	}
	if st := r.Form.Get("state"); st != "" {
		target = withQuery(target, url.Values{"state": {st}})
	}
	http.Redirect(w, r, target, http.StatusFound)
}
