package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/riskcache"
)

// Tests of attacks against the handler: each sends real HTTP (often raw
// bytes, for what net/http's client would never send) through the proxy.

// pathConfig has a strict route (/ecp, admins only) under a laxer one (/).
const pathConfig = `
auth:
  issuer: {{ISSUER}}
  client_id: riskgate
  audiences: [riskgate]
devices:
  sources:
    - claim: deviceid
    - query: DeviceId
risk:
  max_age: 1h
routes:
  - name: mail
    host: mail.test
    upstream: {{UPSTREAM}}
  - name: ecp
    host: mail.test
    path_prefix: /ecp
    upstream: {{UPSTREAM}}
  - name: api
    host: mail.test
    path_prefix: /api/admin
    upstream: {{UPSTREAM}}
policies:
  - name: mail
    routes: [mail]
    max_risk: low
  - name: ecp-admins
    routes: [ecp, api]
    groups: [admins]
    max_risk: secured
`

// rawRequest writes raw to the proxy server and reads one response.
func (h *harness) rawRequest(t testing.TB, raw string) (*http.Response, string, net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", h.server.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(conn, raw)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(resp.Body)
	}
	resp.Body.Close()
	return resp, string(body), conn, br
}

// TestPathParametersAndTrailingDotsCannotChangeTheRoute: Java servlet
// containers drop ";params" from each segment ("/ecp;x/" is "/ecp/",
// "/a/..;/ecp" is "/ecp") and IIS drops a segment's trailing dots and
// spaces ("/ecp./" is "/ecp/"): such a path must not match the lax route
// while the upstream serves the strict one.
func TestPathParametersAndTrailingDotsCannotChangeTheRoute(t *testing.T) {
	h := newHarness(t, pathConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})

	// The strict route blocks alice; the lax one lets her through.
	resp, body := h.do(t, "mail.test", "/ecp/", bearerHeader(tok, "Accept", "application/json"))
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	resp, body = h.do(t, "mail.test", "/owa/", bearerHeader(tok, "Accept", "application/json"))
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	before := len(h.upstream.received())

	for _, target := range []string{
		"/ecp;x/", "/ECP;jsessionid=1/default.aspx", "/owa/..;/ecp/", "/;x/ecp/", "/owa/.;/../ecp",
		"/ecp./", "/ecp%20/", "/Ecp.%20/x", "/api;x/admin/users", "/api/admin./users", "/ecp%3Bx/",
	} {
		t.Run(target, func(t *testing.T) {
			resp, body := h.do(t, "mail.test", target, bearerHeader(tok, "Accept", "application/json"))
			assert.Contains(t, []int{http.StatusBadRequest, http.StatusForbidden}, resp.StatusCode, body)
		})
	}
	assert.Len(t, h.upstream.received(), before, "a path reached the upstream past the strict route")

	// Parameters and dots that cannot change the route still pass.
	for _, target := range []string{"/owa/page;jsessionid=1", "/owa/file.", "/owa/v1.2/x", "/owa/a;b/c"} {
		t.Run("allowed "+target, func(t *testing.T) {
			resp, body := h.do(t, "mail.test", target, bearerHeader(tok, "Accept", "application/json"))
			assert.Equal(t, http.StatusOK, resp.StatusCode, body)
		})
	}
}

// tunnelUpstream answers any Upgrade with 101 and then serves plain
// HTTP/1.1 requests inside the tunnel, echoing their X-Forwarded-User: what
// an h2c-capable upstream does with the HTTP/2 requests that follow an
// "Upgrade: h2c".
func tunnelUpstream(t testing.TB) *httptest.Server {
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			_, _ = io.WriteString(w, "plain "+r.Header.Get("X-Forwarded-User"))
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", r.Header.Get("Upgrade"))
		_ = brw.Flush()
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			_, _ = io.Copy(conn, brw) // echo until either side closes
			return
		}
		if !strings.EqualFold(r.Header.Get("Upgrade"), "h2c") {
			return
		}
		inner, err := http.ReadRequest(brw.Reader)
		if err != nil {
			return
		}
		body := "tunnelled " + inner.URL.Path + " as " + inner.Header.Get("X-Forwarded-User")
		fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		_ = brw.Flush()
	}))
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return srv
}

// TestUpgradeOnlyToWebSocket: an "Upgrade: h2c" (or any protocol but
// WebSocket) forwarded to an upstream that accepts it turns the connection
// into a tunnel in which every later request skips riskgate: no route
// match, no policy, and identity headers of the client's choosing.
func TestUpgradeOnlyToWebSocket(t *testing.T) {
	up := tunnelUpstream(t)
	h := newHarness(t, strings.ReplaceAll(pathConfig, "{{UPSTREAM}}", up.URL))
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})

	for _, proto := range []string{"h2c", "H2C", "foo/1", "h2c, websocket"} {
		t.Run(proto, func(t *testing.T) {
			resp, body, conn, br := h.rawRequest(t, "GET /owa/ HTTP/1.1\r\nHost: mail.test\r\n"+
				"Authorization: Bearer "+tok+"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: "+proto+"\r\n"+
				"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// Show what the tunnel gives away before failing.
				_, _ = io.WriteString(conn, "GET /ecp/ HTTP/1.1\r\nHost: mail.test\r\nX-Forwarded-User: ceo@corp.example\r\n\r\n")
				inner, err := http.ReadResponse(br, nil)
				if err == nil {
					b, _ := io.ReadAll(inner.Body)
					body = string(b)
				}
				t.Fatalf("upgrade to %q was forwarded; inside the tunnel: %q", proto, body)
			}
			assert.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.Equal(t, "plain "+alice, body)
		})
	}

	t.Run("websocket still upgrades", func(t *testing.T) {
		resp, _, _, _ := h.rawRequest(t, "GET /owa/ws HTTP/1.1\r\nHost: mail.test\r\n"+
			"Authorization: Bearer "+tok+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	})
	t.Run("websocket upgrade is still decided", func(t *testing.T) {
		resp, _, _, _ := h.rawRequest(t, "GET /ecp/ws HTTP/1.1\r\nHost: mail.test\r\n"+
			"Authorization: Bearer "+tok+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
}

// TestConnectIsRefused: CONNECT opens a tunnel; riskgate fronts web
// applications and never forwards one.
func TestConnectIsRefused(t *testing.T) {
	h := newHarness(t, pathConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})
	for _, target := range []string{"/owa/", "mail.test:443"} {
		t.Run(target, func(t *testing.T) {
			resp, body, _, _ := h.rawRequest(t, "CONNECT "+target+" HTTP/1.1\r\nHost: mail.test\r\n"+
				"Authorization: Bearer "+tok+"\r\n\r\n")
			assert.NotEqual(t, http.StatusOK, resp.StatusCode, body)
			assert.NotEqual(t, http.StatusSwitchingProtocols, resp.StatusCode, body)
		})
	}
	assert.Empty(t, h.upstream.received())
}

// TestRequestTrailersCannotCarryIdentity: a chunked request may end with
// trailers; one naming an identity header must not reach the upstream,
// where a framework could merge it into the headers.
func TestRequestTrailersCannotCarryIdentity(t *testing.T) {
	var mu sync.Mutex
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = r.Trailer.Clone()
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	h := newHarness(t, strings.ReplaceAll(pathConfig, "{{UPSTREAM}}", up.URL))
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})

	resp, body, _, _ := h.rawRequest(t, "POST /owa/ HTTP/1.1\r\nHost: mail.test\r\n"+
		"Authorization: Bearer "+tok+"\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n"+
		"Trailer: X-Forwarded-User, X-Riskgate-Decision\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-Forwarded-User: ceo@corp.example\r\nX-Riskgate-Decision: allow\r\n\r\n")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	mu.Lock()
	defer mu.Unlock()
	for k, v := range got {
		assert.Empty(t, v, "trailer %s reached the upstream", k)
	}
}

// TestRepeatedAuthorizationRefused: with two Authorization headers riskgate
// would verify the first while the upstream may honour the other (IIS
// joins them, others take the last): a user authenticated to riskgate as
// one person and to the application as another.
func TestRepeatedAuthorizationRefused(t *testing.T) {
	h := newHarness(t, pathConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})
	hdr := http.Header{"Authorization": {"Bearer " + tok, "Basic Ym9iOnNlY3JldA=="}, "Accept": {"application/json"}}
	resp, body := h.do(t, "mail.test", "/owa/", hdr)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
	assert.Empty(t, h.upstream.received())
}

// TestBearerUnverifiedEmailRefused: the browser sign-in refuses an ID token
// whose email is unverified when the email names the user; a bearer token
// must not be a way around that.
func TestBearerUnverifiedEmailRefused(t *testing.T) {
	h := newHarness(t, pathConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok", "email_verified": false})
	resp, body := h.do(t, "mail.test", "/owa/", bearerHeader(tok, "Accept", "application/json"))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, body)
	assert.Empty(t, h.upstream.received())

	tok = h.token(t, alice, map[string]any{"deviceid": "d-ok", "email_verified": true})
	resp, body = h.do(t, "mail.test", "/owa/", bearerHeader(tok, "Accept", "application/json"))
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
}

// TestForwardingHeaderUnderscoreVariantsStripped: CGI, PHP and WSGI read
// "X_Forwarded_For" as HTTP_X_FORWARDED_FOR, the same variable as the
// header riskgate sets: a client could pick its own address that way.
func TestForwardingHeaderUnderscoreVariantsStripped(t *testing.T) {
	h := newHarness(t, pathConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-ok"})
	hdr := bearerHeader(tok)
	hdr["X_forwarded_for"] = []string{"10.9.9.9"}
	hdr["X-Forwarded_Host"] = []string{"admin.internal"}
	hdr["X_Forwarded_Proto"] = []string{"https"}
	hdr["X_Request_Id"] = []string{"forged"}
	resp, body := h.do(t, "mail.test", "/owa/", hdr)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	got := h.upstream.last(t).Header
	for k := range got {
		assert.NotContains(t, []string{"X_FORWARDED_FOR", "X-FORWARDED_HOST", "X_FORWARDED_PROTO", "X_REQUEST_ID"}, strings.ToUpper(k))
	}
}

// TestQueryDeviceIDCaseVariants: ASP.NET (Exchange ActiveSync) reads query
// parameters case-insensitively, so "deviceid" is the same parameter as
// "DeviceId": two spellings are as ambiguous as two values.
func TestQueryDeviceIDCaseVariants(t *testing.T) {
	h := newHarness(t, pathConfig)
	tok := h.token(t, alice, nil)
	tests := []struct {
		name, query string
		status      int
	}{
		{"two spellings", "DeviceId=d-ok&deviceid=d-high", http.StatusForbidden},
		{"lower case only", "deviceid=d-ok", http.StatusOK},
		{"lower case high", "deviceid=d-high", http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.do(t, "mail.test", "/Microsoft-Server-ActiveSync?Cmd=Sync&"+tc.query, bearerHeader(tok, "Accept", "application/json"))
			assert.Equal(t, tc.status, resp.StatusCode, body)
		})
	}
}

// TestTrustedCIDRsUseTheTCPPeer: the header device source trusts the
// connection's peer, never an address the client writes in
// X-Forwarded-For or Forwarded.
func TestTrustedCIDRsUseTheTCPPeer(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, nil)
	hdr := bearerHeader(tok, "X-Device-Id", "d-ok", "Accept", "application/json",
		"X-Forwarded-For", "10.1.2.3", "X-Real-Ip", "10.1.2.3", "Forwarded", "for=10.1.2.3")
	resp, body := h.do(t, "mail.test", "/", hdr)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	assert.Contains(t, body, `"reason":"device_missing"`)
	assert.Empty(t, h.upstream.received())
}

// TestAbsoluteFormRoutesByItsHost: with an absolute-form request target
// the Host header is ignored (RFC 9112 section 3.2.2); the route, the
// decision and X-Forwarded-Host all follow the target's host.
func TestAbsoluteFormRoutesByItsHost(t *testing.T) {
	h := newHarness(t, testConfig)
	tok := h.token(t, alice, map[string]any{"deviceid": "d-high"})
	// mail.test blocks d-high; lax.test (require_owner_match off) would not.
	resp, body, _, _ := h.rawRequest(t, "GET http://mail.test/inbox HTTP/1.1\r\nHost: lax.test\r\n"+
		"Authorization: Bearer "+tok+"\r\nAccept: application/json\r\n\r\n")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	assert.Contains(t, body, `"policy":"mobile-risk"`)

	tok = h.token(t, alice, map[string]any{"deviceid": "d-ok"})
	resp, body, _, _ = h.rawRequest(t, "GET http://mail.test/inbox HTTP/1.1\r\nHost: lax.test\r\n"+
		"Authorization: Bearer "+tok+"\r\n\r\n")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "mail.test", h.upstream.last(t).Header.Get("X-Forwarded-Host"))
}

// TestOptionsAsteriskNeverForwarded: "OPTIONS *" is answered by net/http
// itself and never reaches an upstream.
func TestOptionsAsteriskNeverForwarded(t *testing.T) {
	h := newHarness(t, testConfig)
	resp, _, _, _ := h.rawRequest(t, "OPTIONS * HTTP/1.1\r\nHost: mail.test\r\n\r\n")
	assert.Less(t, resp.StatusCode, 500)
	assert.Empty(t, h.upstream.received())
}

// TestRefusedTokensAreNotLogged: the "authentication failed" line says why
// a token was refused without quoting it: a log reader must not be able to
// replay a token that was, say, only expired by a second of clock skew.
func TestRefusedTokensAreNotLogged(t *testing.T) {
	h := newHarness(t, testConfig)
	claims := h.issuer.Claims(alice, "riskgate")
	claims["exp"] = time.Now().Add(-time.Second).Unix()
	expired := h.issuer.Sign(t, claims)
	parts := strings.Split(h.token(t, alice, nil), ".")
	tokens := []string{
		expired,
		h.issuer.Sign(t, h.issuer.Claims(alice, "someone-else")),
		parts[0] + "." + parts[1] + ".c2lnbmF0dXJl",
		parts[0] + ".not-base64!." + parts[2],
		"e30." + parts[1] + "." + parts[2],
	}
	for _, tok := range tokens {
		resp, _ := h.do(t, "mail.test", "/", bearerHeader(tok))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	lines := h.logs.lines(t, "authentication failed")
	require.Len(t, lines, len(tokens))
	logged := fmt.Sprint(lines)
	for _, tok := range tokens {
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 16 {
				assert.NotContains(t, logged, part)
			}
		}
	}
}

// TestUpgradedConnectionEndsWithTheCredential: a WebSocket is decided once,
// at the upgrade; it must not outlive the token or session that was
// decided, or a device that turns risky keeps its open connection forever.
func TestUpgradedConnectionEndsWithTheCredential(t *testing.T) {
	up := tunnelUpstream(t)
	h := newHarness(t, strings.ReplaceAll(pathConfig, "{{UPSTREAM}}", up.URL))
	claims := h.issuer.Claims(alice, "riskgate")
	claims["deviceid"] = "d-ok"
	claims["exp"] = time.Now().Add(2 * time.Second).Unix()
	tok := h.issuer.Sign(t, claims)

	resp, _, conn, br := h.rawRequest(t, "GET /owa/ws HTTP/1.1\r\nHost: mail.test\r\n"+
		"Authorization: Bearer "+tok+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	_, err := io.WriteString(conn, "ping")
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(br, buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf))

	// The connection is closed once the token expires (the read deadline
	// set by rawRequest, 10s, fails the test if it is not).
	_, err = io.ReadAll(br)
	require.NoError(t, err, "the upgraded connection outlived the token")
}

// TestUpgradedConnectionEndsWhenTheDeviceTurnsRisky: an open WebSocket is
// decided again while it is open, so a device that turns risky loses it.
func TestUpgradedConnectionEndsWhenTheDeviceTurnsRisky(t *testing.T) {
	up := tunnelUpstream(t)
	h := newHarness(t, strings.ReplaceAll(pathConfig, "{{UPSTREAM}}", up.URL), func(o *Options, _ *SnapshotOptions) {
		o.RecheckInterval = 50 * time.Millisecond
	})
	claims := h.issuer.Claims(alice, "riskgate")
	claims["deviceid"] = "d-ok"
	tok := h.issuer.Sign(t, claims) // valid for an hour: only the risk can end it

	resp, _, conn, br := h.rawRequest(t, "GET /owa/ws HTTP/1.1\r\nHost: mail.test\r\n"+
		"Authorization: Bearer "+tok+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	echo := func() error {
		if _, err := io.WriteString(conn, "ping"); err != nil {
			return err
		}
		buf := make([]byte, 4)
		_, err := io.ReadFull(br, buf)
		return err
	}
	// Several re-checks pass while the device stays secured.
	for range 4 {
		require.NoError(t, echo())
		time.Sleep(60 * time.Millisecond) // lets re-checks run; nothing waits on it
	}

	h.cache.Apply("acme", []riskcache.Report{{DeviceID: "d-ok", Level: policy.LevelHigh, User: alice,
		Platform: "ios", OSVersion: "17.4", UpdatedAt: h.now}})
	// The connection is closed at the next re-check (rawRequest's 10s read
	// deadline fails the test if it is not).
	_, err := io.ReadAll(br)
	require.NoError(t, err, "the upgraded connection outlived the device's risk")
	assert.NotEmpty(t, h.logs.lines(t, "upgraded connection closed: now blocked"))
}
