package devidp

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// authRequest is a validated authorization request (RFC 6749 section 4.1.1
// with PKCE, RFC 7636 section 4.3).
type authRequest struct {
	ClientID      string
	RedirectURI   string
	Scope         string
	State         string
	Nonce         string
	CodeChallenge string
}

// codeGrant is an issued, not yet redeemed authorization code.
type codeGrant struct {
	authRequest
	Email   string
	Expires time.Time
	// AuthTime is when the user picked their account.
	AuthTime time.Time
}

// authError is a refused authorization request. When redirect is false the
// client or redirect_uri could not be trusted and the error is shown to the
// user instead of being sent to the redirect_uri (RFC 6749 section 4.1.2.1).
type authError struct {
	redirect bool
	code     string
	desc     string
}

// parseAuthRequest validates the parameters of GET and POST /authorize.
func (s *Server) parseAuthRequest(q url.Values) (authRequest, *authError) {
	ar := authRequest{
		ClientID:      q.Get("client_id"),
		RedirectURI:   q.Get("redirect_uri"),
		Scope:         q.Get("scope"),
		State:         q.Get("state"),
		Nonce:         q.Get("nonce"),
		CodeChallenge: q.Get("code_challenge"),
	}
	c, ok := s.clients[ar.ClientID]
	if !ok {
		return ar, &authError{code: "invalid_client", desc: "unknown client_id " + strconv.Quote(ar.ClientID)}
	}
	if !slices.Contains(c.RedirectURIs, ar.RedirectURI) {
		return ar, &authError{code: "invalid_request", desc: "redirect_uri " + strconv.Quote(ar.RedirectURI) + " is not registered for client " + strconv.Quote(ar.ClientID)}
	}
	// From here on errors go back to the client.
	if rt := q.Get("response_type"); rt != "code" {
		return ar, &authError{redirect: true, code: "unsupported_response_type", desc: "only response_type=code is supported"}
	}
	if !slices.Contains(strings.Fields(ar.Scope), "openid") {
		return ar, &authError{redirect: true, code: "invalid_scope", desc: "scope must include openid"}
	}
	if ar.CodeChallenge == "" {
		return ar, &authError{redirect: true, code: "invalid_request", desc: "PKCE is required: code_challenge missing"}
	}
	if m := q.Get("code_challenge_method"); m != "S256" {
		return ar, &authError{redirect: true, code: "invalid_request", desc: "code_challenge_method must be S256"}
	}
	if len(ar.CodeChallenge) != 43 || !isUnreserved(ar.CodeChallenge) {
		return ar, &authError{redirect: true, code: "invalid_request", desc: "malformed code_challenge"}
	}
	return ar, nil
}

// isUnreserved reports whether s only holds RFC 3986 unreserved characters,
// the alphabet of PKCE verifiers and challenges (RFC 7636 section 4.1).
func isUnreserved(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9',
			r == '-', r == '.', r == '_', r == '~':
		default:
			return false
		}
	}
	return true
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, ar authRequest, e *authError) {
	s.log.Warn("devidp: authorization refused", "client_id", ar.ClientID, "error", e.code, "description", e.desc)
	if !e.redirect {
		s.render(w, http.StatusBadRequest, "error", map[string]any{"Title": "Bad sign-in request", "Code": e.code, "Message": e.desc})
		return
	}
	v := url.Values{"error": {e.code}, "error_description": {e.desc}}
	if ar.State != "" {
		v.Set("state", ar.State)
	}
	http.Redirect(w, r, withQuery(ar.RedirectURI, v), http.StatusFound)
}

// withQuery adds v to the query of the (already validated) URI u.
func withQuery(u string, v url.Values) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := pu.Query()
	for k, vals := range v {
		q[k] = vals
	}
	pu.RawQuery = q.Encode()
	return pu.String()
}

// authorizePage shows the demo users to pick from.
func (s *Server) authorizePage(w http.ResponseWriter, r *http.Request) {
	ar, e := s.parseAuthRequest(r.URL.Query())
	if e != nil {
		s.refuse(w, r, ar, e)
		return
	}
	s.render(w, http.StatusOK, "login", map[string]any{
		"Issuer": s.issuer,
		"Action": s.endpoint("/authorize"),
		"Client": ar.ClientID,
		"Users":  s.users,
		"Params": hiddenParams(r.URL.Query()),
		"Hint":   strings.ToLower(r.URL.Query().Get("login_hint")),
	})
}

// authorizeSubmit takes the user's choice and redirects to the client with a
// one-time code.
func (s *Server) authorizeSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, "error", map[string]any{"Title": "Bad sign-in request", "Code": "invalid_request", "Message": err.Error()})
		return
	}
	ar, e := s.parseAuthRequest(r.PostForm)
	if e != nil {
		s.refuse(w, r, ar, e)
		return
	}
	u, ok := s.byEmail[strings.ToLower(r.PostForm.Get("user"))]
	if !ok {
		s.render(w, http.StatusBadRequest, "error", map[string]any{"Title": "Unknown user", "Code": "invalid_request", "Message": "pick one of the demo users"})
		return
	}
	now := s.now()
	code := randomToken()
	s.mu.Lock()
	for k, g := range s.codes {
		if !now.Before(g.Expires) {
			delete(s.codes, k)
		}
	}
	full := len(s.codes) >= maxPendingCodes
	if !full {
		s.codes[code] = codeGrant{authRequest: ar, Email: u.Email, Expires: now.Add(codeTTL), AuthTime: now}
	}
	s.mu.Unlock()
	if full {
		s.refuse(w, r, ar, &authError{redirect: true, code: "temporarily_unavailable", desc: "too many pending codes"})
		return
	}
	s.log.Info("devidp: user signed in", "client_id", ar.ClientID, "user", u.Email)
	v := url.Values{"code": {code}}
	if ar.State != "" {
		v.Set("state", ar.State)
	}
	http.Redirect(w, r, withQuery(ar.RedirectURI, v), http.StatusSeeOther)
}

type hiddenParam struct{ Name, Value string }

// hiddenParams are the /authorize parameters the login form carries over to
// its POST.
func hiddenParams(q url.Values) []hiddenParam {
	var out []hiddenParam
	for _, k := range [...]string{"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge", "code_challenge_method"} {
		if q.Has(k) {
			out = append(out, hiddenParam{k, q.Get(k)})
		}
	}
	return out
}
